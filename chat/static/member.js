// Member page: ask for a peer, wait in line, chat, end, rate. Crisis resources are one
// click away in the header on every screen. Each screen is its own module in member/.

import { setupCrisisPanel } from './member/crisis.js';
import { elsewherePanel } from './member/elsewhere.js';
import { handedOnPanel } from './member/handed-on.js';
import { setupMyData } from './member/mydata.js';
import { pastPeersPanel } from './member/past-peers.js';
import { ratingPanel } from './member/rating.js';
import { reportPanel } from './member/report.js';
import { requestPanel } from './member/request.js';
import { Screens } from './member/screens.js';
import { ChatView } from './ui/chat-view.js';
import { wireChatViews } from './ui/chat-wiring.js';
import { startPage } from './ui/chrome.js';
import { $, bidi, clear } from './ui/dom.js';
import { loadLanguage, t, tParts } from './ui/i18n.js';
import { getToken } from './client/tokens.js';

const ROLE = 'member';

// Without a token the page goes to /login at once; with one, the language is loaded before
// anything renders text.
if (getToken(ROLE)) await loadLanguage();

const page = startPage(ROLE);
if (page) main(page);

/** @param {import('./ui/chrome.js').Page} page */
function main({ token, client, notice }) {
  setupCrisisPanel(token);
  setupMyData(token, client, ROLE);
  const screens = new Screens();
  /** @type {ChatView | null} the current (or just ended) conversation */
  let chat = null;
  const elsewhere = elsewherePanel(client);
  const pastPeers = pastPeersPanel(client);
  const request = requestPanel(client, screens, notice, () => pastPeers.preferredId);
  const report = reportPanel(client, () => (chat ? chat.id : rating.feedbackFor));
  const rating = ratingPanel(client, screens, {
    chatId: () => (chat ? chat.id : null),
    onAgain: () => {
      chat = null;
      clear(screens.chatSlot);
      screens.set('start');
      $('#start-heading').focus();
    },
  });

  /**
   * @param {string} id
   * @param {string | undefined} peerName
   * @param {string[] | undefined} tags
   */
  function openChat(id, peerName, tags) {
    if (chat && chat.id === id) return chat;
    const view = new ChatView({ client, conversationId: id, selfRole: ROLE, peerName, tags: tags || [], onEnded: () => {
      rating.show(id);
      report.showFor(id, false);
    } });
    chat = view;
    report.showFor(id, true);
    clear(screens.chatSlot).append(view.root);
    screens.set('chat');
    view.focus();
    return view;
  }

  client.on('welcome', (w) => {
    const conv = (w.conversations || [])[0];
    const open = (w.requests || [])[0];
    if (conv) {
      // No `peer` while a cold transfer waits (nobody holds it): member/handed-on.js says so.
      openChat(conv.id, conv.peer?.name, conv.tags);
      return;
    }
    if (screens.view === 'chat' && chat && !chat.isEnded) {
      // It ended while we were away; the end frame itself was not replayed.
      chat.ended({ by: 'system', reason: 'ended' }, { guessed: true });
      return;
    }
    if (open) {
      request.showQueued(open);
      return;
    }
    if (screens.view === 'queued') {
      notice(t('member.request_gone'));
      screens.set('start');
      return;
    }
    if (screens.view === 'start' && rating.feedbackFor) {
      // Reloaded before rating: show that conversation again (resume replays it) and ask.
      openChat(rating.feedbackFor, undefined, []).ended({ by: 'system', reason: 'ended' }, { guessed: true });
    }
  });

  client.on('conversation_started', ({ conversation }) => {
    const name = conversation.specialist && conversation.specialist.name;
    openChat(conversation.id, name, conversation.tags);
    notice(...tParts('member.peer_joined', { name: name ? bidi(name) : t('member.a_peer') }));
  });

  /** @param {string} id */
  const viewFor = (id) => (chat && chat.id === id ? chat : null);
  wireChatViews(client, viewFor);
  handedOnPanel(client, { viewFor, notice });

  client.on('error', (e) => {
    const type = e.request && e.request.type;
    if (type === 'request') {
      if (!elsewhere.refused(e)) request.refused(e);
    }
    else if (type === 'feedback') rating.refused(e);
    else if (type === 'report') report.refused(e);
    else if (type === 'cancel') notice(e.message || t('member.cancel_failed'));
    else if (type === 'end') notice(e.message || t('member.end_failed'));
    else if (e.message) notice(e.message);
  });
  client.on('forbidden', () => notice(t('common.forbidden')));

  document.addEventListener('visibilitychange', () => chat && chat.maybeRead());
  window.addEventListener('focus', () => chat && chat.maybeRead());

  if (rating.feedbackFor) client.follow(rating.feedbackFor, 0);
  screens.set('start');
  client.connect();
}
