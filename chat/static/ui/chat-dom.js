// The elements of one chat view (chat-view.js): heading, message list, typing line,
// composer and end controls, and one message's list item.

import { formatTime } from './format.js';
import { bidi, h, show } from './dom.js';
import { t, tParts } from './i18n.js';

const MAX_BODY_CHARS = 4000;

/**
 * @param {string} peerName
 * @param {string} conversationId
 * @param {string[]} tags
 */
export function buildChat(peerName, conversationId, tags) {
  const uid = 'c' + Math.random().toString(36).slice(2, 9);
  const heading = h('h2', { id: `${uid}-h`, class: 'chat-title', testid: 'chat-title' }, ...tParts('chat.chat_with', { name: bidi(peerName) }));
  const peerStatusEl = h('p', { class: 'peer-status', role: 'status', testid: 'peer-status' });
  const list = h('ol', {
    class: 'messages',
    role: 'log',
    'aria-live': 'polite',
    'aria-relevant': 'additions',
    'aria-label': t('chat.messages_with', { name: peerName }),
    tabindex: '0',
    testid: 'messages',
  });
  const typingEl = h('p', { class: 'typing', testid: 'typing-indicator', 'aria-live': 'polite', hidden: true });
  const endedEl = h('p', { class: 'ended-notice', role: 'status', testid: 'ended-notice', hidden: true });
  const input = h('textarea', {
    id: `${uid}-input`,
    rows: '2',
    maxlength: String(MAX_BODY_CHARS),
    autocomplete: 'off',
    dir: 'auto',
    testid: 'composer-input',
    'aria-describedby': `${uid}-hint`,
  });
  const sendButton = h('button', { type: 'submit', class: 'primary', testid: 'send-button' }, t('chat.send'));
  const composerLabel = h('label', { for: `${uid}-input`, class: 'visually-hidden' }, ...tParts('chat.message_to', { name: bidi(peerName) }));
  const form = h(
    'form',
    { class: 'composer', testid: 'composer', 'aria-label': t('chat.write_a_message') },
    composerLabel,
    input,
    sendButton,
    h('p', { id: `${uid}-hint`, class: 'hint' }, t('chat.enter_hint')),
  );
  const endButton = h('button', { type: 'button', class: 'danger', testid: 'end-button' }, t('chat.end_chat'));
  const confirmYes = h('button', { type: 'button', class: 'danger', testid: 'end-confirm' }, t('chat.yes_end_it'));
  const confirmNo = h('button', { type: 'button', testid: 'end-cancel' }, t('chat.keep_chatting'));
  const confirmBox = h(
    'div',
    { class: 'confirm', role: 'group', 'aria-label': t('chat.confirm_end'), hidden: true },
    h('span', {}, t('chat.end_this')),
    confirmYes,
    confirmNo,
  );
  const actions = h('div', { class: 'chat-actions' }, endButton, confirmBox);
  const tagLine = tags.length ? h('p', { class: 'tags', testid: 'chat-tags' }, t('chat.topics', { topics: tags.join(', ') })) : null;
  const root = h(
    'section',
    { class: 'chat', 'aria-labelledby': `${uid}-h`, testid: 'chat', dataset: { conversationId } },
    h('div', { class: 'chat-head' }, heading, actions),
    tagLine,
    peerStatusEl,
    list,
    typingEl,
    endedEl,
    form,
  );
  return { root, heading, peerStatusEl, list, typingEl, endedEl, input, composerLabel, sendButton, form, endButton, confirmYes, confirmNo, confirmBox, actions };
}

/**
 * The conversation is with someone else now (handed on, PRODUCT.md §9): every place that
 * names the peer names them.
 * @param {ReturnType<typeof buildChat>} ui
 * @param {string} peerName
 */
export function renamePeer(ui, peerName) {
  ui.heading.replaceChildren(...tParts('chat.chat_with', { name: bidi(peerName) }));
  ui.composerLabel.replaceChildren(...tParts('chat.message_to', { name: bidi(peerName) }));
  ui.list.setAttribute('aria-label', t('chat.messages_with', { name: peerName }));
}

/**
 * A line from the service in the conversation's log, between messages (e.g. "Ana has
 * handed your conversation to Ben"): not a message, never numbered.
 * @param {(Node | string)[]} parts
 */
export function serviceLine(parts) {
  return h('li', { class: 'service-line', role: 'article', testid: 'service-line' }, ...parts);
}

/**
 * The composer (Enter sends, Shift+Enter new line, typing notices) and the end controls
 * (confirm, Escape backs out).
 * @param {import('./chat-view.js').ChatView} view
 */
export function wireControls(view) {
  const { form, input, endButton, confirmBox, confirmNo, confirmYes } = view.ui;
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    view.submit();
  });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      view.submit();
    }
  });
  input.addEventListener('input', () => {
    if (input.value.trim() && !view.isEnded) view.client.typing(view.id);
  });
  endButton.addEventListener('click', () => {
    show(endButton, false);
    show(confirmBox, true);
    confirmNo.focus();
  });
  confirmNo.addEventListener('click', () => view.closeConfirm());
  confirmBox.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') view.closeConfirm();
  });
  confirmYes.addEventListener('click', () => {
    view.client.send({ type: 'end', conversation_id: view.id });
    view.closeConfirm(false);
    endButton.disabled = true;
    endButton.textContent = t('chat.ending');
  });
}

/** @typedef {HTMLLIElement & {receipt: HTMLSpanElement | null}} MessageItem */

/**
 * One message. Sender name and body are set with dir="auto": each takes its direction from
 * its own text and is isolated from the rest of the line.
 * @param {{own: boolean, selfRole: string, name: string, body: string, sentAt?: string, seq?: number, cmid?: string}} m
 * @returns {MessageItem}
 */
export function messageItem({ own, selfRole, name, body, sentAt, seq, cmid }) {
  const receipt = own ? h('span', { class: 'receipt', testid: 'receipt' }) : null;
  const li = /** @type {MessageItem} */ (
    h(
      'li',
      // An item of a role="log" list is no longer a list item to assistive technology:
      // each message is an article in the log (axe-core: listitem).
      { class: ['message', own ? 'own' : 'peer'], role: 'article', testid: 'message' },
      h('span', { class: 'sender', dir: 'auto', testid: 'message-sender' }, own ? t('chat.you') : name),
      h('p', { class: 'body', dir: 'auto', testid: 'message-body' }, body),
      h('span', { class: 'meta' }, sentAt ? h('time', { datetime: sentAt }, formatTime(sentAt)) : null, receipt ? ' ' : null, receipt),
    )
  );
  li.dataset.senderRole = own ? selfRole : 'peer';
  if (seq) li.dataset.seq = String(seq);
  if (cmid) li.dataset.clientMsgId = cmid;
  li.receipt = receipt;
  return li;
}

/**
 * "You ended the conversation.", "Ana ended the conversation (timeout)."
 * @param {{by?: string, reason?: string, selfRole: string, peerName: string}} end
 * @returns {(Node | string)[]}
 */
export function endedText({ by, reason, selfRole, peerName }) {
  // The specialist who handed a conversation on (PRODUCT.md §9), whoever asked for it.
  if (reason === 'transferred') return [t('chat.ended_transferred')];
  const who = by === selfRole ? t('chat.you') : by === 'system' ? t('chat.the_service') : by === 'supervisor' ? t('chat.a_supervisor') : bidi(peerName);
  const why = reason && reason !== 'ended' ? ` (${reason.replace(/_/g, ' ')})` : '';
  return tParts('chat.ended_by', { who, why });
}
