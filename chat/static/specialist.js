// Specialist console: availability, offers with a countdown, the waiting queue to claim
// from, several chats at once with unread counts, and handing a chat on. Each panel is a
// module in specialist/.

import { chatsPanel } from './specialist/chats.js';
import { offersPanel } from './specialist/offers.js';
import { profilePanel } from './specialist/profile.js';
import { queuePanel } from './specialist/queue.js';
import { notesPanel } from './specialist/notes.js';
import { safetyPanel } from './specialist/safety.js';
import { transferPanel } from './specialist/transfer.js';
import { wrapUpPanel } from './specialist/wrapup.js';
import { wireChatViews } from './ui/chat-wiring.js';
import { api } from './client/http.js';
import { getToken } from './client/tokens.js';
import { startPage } from './ui/chrome.js';
import { $, announce } from './ui/dom.js';
import { loadLanguage, t } from './ui/i18n.js';

const ROLE = 'specialist';
// Without a token the page goes to /login at once; with one, the language is loaded before
// anything renders text.
if (getToken(ROLE)) await loadLanguage();
const BASE_TITLE = document.title;

const page = startPage(ROLE);
if (page) main(page);

/** @param {import('./ui/chrome.js').Page} page */
function main({ token, client, notice }) {
  const alertEl = $('#alert');
  /** @param {string} text said at once by screen readers (an assertive live region) */
  const shout = (text) => announce(alertEl, text);

  // Filled in below; the panels call back into each other only through these hooks.
  const changed = () => {
    profile.render();
    renderTitle();
  };
  const chats = chatsPanel(client, ROLE, { onChange: changed });
  const offers = offersPanel(client, { notice, shout, onCount: renderTitle });
  const queue = queuePanel(client, notice);
  const profile = profilePanel(client, token, { notice, activeChats: () => chats.active });

  function renderTitle() {
    const parts = [];
    if (offers.size) parts.push(t(offers.size > 1 ? 'spec.title_offers' : 'spec.title_offer', { n: offers.size }));
    if (chats.unread) parts.push(t('spec.title_unread', { n: chats.unread }));
    document.title = parts.length ? `(${parts.join(', ')}) ${BASE_TITLE}` : BASE_TITLE;
  }

  client.on('welcome', (w) => {
    profile.welcomed(w);
    offers.reconcile(w.offers || []);
    const active = new Set();
    for (const c of w.conversations || []) {
      active.add(c.id);
      chats.ensure(c.id, c.peer?.name, c.tags);
    }
    for (const chat of chats.chats.values()) {
      if (!active.has(chat.id) && !chat.view.isEnded) chat.view.ended({ by: 'system', reason: 'ended' }, { guessed: true });
    }
    profile.load();
  });

  client.on('conversation_started', ({ conversation }) => {
    offers.dropAccepting();
    const fresh = !chats.chats.has(conversation.id);
    const chat = chats.ensure(conversation.id, conversation.member && conversation.member.alias, conversation.tags);
    if (fresh) {
      shout(t('spec.new_chat', { name: chat.name }));
      if (chats.selected === conversation.id) chat.view.focus();
    }
  });

  safetyPanel(client, chats, { notice, shout });
  const wrapUp = wrapUpPanel(client, chats, { notice });
  notesPanel(client, chats, { notice });
  /** @param {string} path */
  const call = async (path) => {
    try {
      return await api(token, path);
    } catch (err) {
      if (/** @type {{status?: number}} */ (err).status === 401) client.emit('auth_failed', {});
      throw err;
    }
  };
  const transfer = transferPanel(client, chats, { call, notice });

  wireChatViews(client, chats.viewFor, { onMessage: (view, m) => chats.counted(view.id, m) });

  client.on('error', (e) => {
    const req = e.request;
    if (req && (req.type === 'accept' || req.type === 'decline')) offers.refused(e, req);
    else if (req && req.type === 'claim') queue.refused(e, req);
    else if (req && req.type === 'transfer') transfer.refused(e, req);
    else if (e.message) notice(e.message);
  });
  client.on('forbidden', () => notice(t('common.forbidden')));

  setInterval(() => {
    offers.tickAll();
    wrapUp.tickAll();
    queue.tickAll(Date.now());
  }, 1000);

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') chats.seen();
  });

  client.subscribe({ type: 'queue_watch' });
  client.connect();
}
