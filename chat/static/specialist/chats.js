// Specialist page, chats: one tab per conversation with an unread badge; each chat is a
// ChatView. An ended chat keeps its transcript and gets "Close this chat".

import { ChatView } from '../ui/chat-view.js';
import { $, bidi, h, show } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */
/**
 * @typedef {object} Chat
 * @property {string} id
 * @property {string} name the member's alias
 * @property {number} unread
 * @property {HTMLLIElement} tab
 * @property {HTMLButtonElement} button
 * @property {HTMLSpanElement} badge
 * @property {HTMLSpanElement} status
 * @property {ChatView} view
 */

/**
 * @param {PeerChatClient} client
 * @param {string} role
 * @param {{onChange: () => void}} hooks onChange: the number of chats or unread messages changed
 */
export function chatsPanel(client, role, { onChange }) {
  const tabs = $('#chat-tabs');
  const panels = $('#chat-panels');
  const empty = $('#chats-empty');
  /** @type {Map<string, Chat>} conversation_id -> chat */
  const chats = new Map();
  /** @type {string | null} */
  let selected = null;

  /**
   * @param {string} id
   * @param {string | undefined} alias
   * @param {string[] | undefined} tags
   * @returns {Chat}
   */
  function ensure(id, alias, tags) {
    const known = chats.get(id);
    if (known) return known;
    const name = alias || t('chat.member');
    const badge = h('span', { class: 'badge', testid: 'unread-count', hidden: true }, '0');
    const label = h('span', { class: 'tab-name' }, bidi(name));
    const status = h('span', { class: 'tab-state', testid: 'chat-tab-state' });
    const button = h('button', { type: 'button', class: 'chat-tab', testid: 'chat-tab', dataset: { conversationId: id } }, label, ' ', badge, status);
    const tab = h('li', {}, button);
    const view = new ChatView({
      client,
      conversationId: id,
      selfRole: role,
      peerName: name,
      tags: tags || [],
      isShown: () => selected === id,
      onEnded: () => ended(chat),
    });
    /** @type {Chat} */
    const chat = { id, name, unread: 0, tab, button, badge, status, view };
    show(view.root, false);
    button.addEventListener('click', () => select(id, true));
    chats.set(id, chat);
    tabs.append(tab);
    panels.append(view.root);
    show(empty, false);
    onChange();
    if (!selected) select(id, false);
    return chat;
  }

  /**
   * @param {string} id
   * @param {boolean} focus
   */
  function select(id, focus) {
    selected = id;
    for (const [cid, c] of chats) {
      const on = cid === id;
      show(c.view.root, on);
      if (on) c.button.setAttribute('aria-current', 'true');
      else c.button.removeAttribute('aria-current');
    }
    const chat = chats.get(id);
    if (!chat) return;
    setUnread(chat, 0);
    chat.view.maybeRead();
    chat.view.scrollToEnd(true);
    if (focus) chat.view.focus();
  }

  /**
   * @param {Chat} chat
   * @param {number} n
   */
  function setUnread(chat, n) {
    chat.unread = n;
    chat.badge.textContent = String(n);
    show(chat.badge, n > 0);
    chat.button.setAttribute('aria-label', `${chat.name}${n ? `, ${t('spec.unread', { n })}` : ''}${chat.view.isEnded ? `, ${t('spec.ended')}` : ''}`);
    onChange();
  }

  /** @param {Chat} chat */
  function ended(chat) {
    chat.status.textContent = ` (${t('spec.ended')})`;
    chat.button.classList.add('ended');
    setUnread(chat, chat.unread);
    const close = h('button', { type: 'button', class: 'close-chat', testid: 'close-chat' }, t('spec.close_chat'));
    close.addEventListener('click', () => closeChat(chat.id));
    chat.view.root.append(close);
    onChange();
  }

  /** @param {string} id */
  function closeChat(id) {
    const chat = chats.get(id);
    if (!chat) return;
    chat.tab.remove();
    chat.view.root.remove();
    chats.delete(id);
    client.forget(id);
    if (selected === id) {
      selected = null;
      const next = chats.keys().next().value;
      if (next) select(next, true);
      else $('#chats-heading').focus();
    }
    show(empty, chats.size === 0);
    onChange();
  }

  return {
    chats,
    ensure,
    get selected() {
      return selected;
    },
    /** @param {string} id */
    viewFor: (id) => chats.get(id)?.view,
    get active() {
      return [...chats.values()].filter((c) => !c.view.isEnded).length;
    },
    get unread() {
      let n = 0;
      for (const chat of chats.values()) n += chat.unread;
      return n;
    },
    /**
     * A message was added to a chat's view: from the member, while that chat is not in
     * front or the window is hidden, it counts as unread.
     * @param {string} id
     * @param {{sender?: {role?: string}}} m
     */
    counted(id, m) {
      const chat = chats.get(id);
      const fromPeer = m.sender && m.sender.role !== role;
      if (chat && fromPeer && !(selected === id && document.visibilityState === 'visible')) setUnread(chat, chat.unread + 1);
    },
    /** The tab is visible again: the chat in front is read. */
    seen() {
      const chat = selected ? chats.get(selected) : undefined;
      if (chat) {
        setUnread(chat, 0);
        chat.view.maybeRead();
      }
    },
  };
}
