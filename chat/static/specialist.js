// Specialist console: availability, offers with a countdown, the waiting queue to claim
// from, and several chats at once with unread counts.

import { api, formatDuration, PeerChatClient, requireToken } from '/static/peerchat.js';
import { $, announce, bindAuthFailure, bindConnectionStatus, bindSignOut, ChatView, clear, h, show } from '/static/ui.js';

const ROLE = 'specialist';
const EXPIRED_SHOWN_MS = 3000;
const BASE_TITLE = document.title;

const token = requireToken(ROLE);
if (token) main(token);

function describe(tags, language) {
  const topics = tags && tags.length ? tags.join(', ') : 'any topic';
  return `${topics} · ${language ? language.toUpperCase() : 'any language'}`;
}

function main(token) {
  const client = new PeerChatClient(token);
  const els = {
    notice: $('#notice'),
    alert: $('#alert'),
    toggle: $('#availability-toggle'),
    toggleText: $('#availability-text'),
    userName: $('#user-name'),
    offers: $('#offers'),
    offersEmpty: $('#offers-empty'),
    offerCount: $('#offer-count'),
    queue: $('#queue'),
    queueEmpty: $('#queue-empty'),
    tabs: $('#chat-tabs'),
    panels: $('#chat-panels'),
    chatsEmpty: $('#chats-empty'),
  };
  const state = {
    status: 'away',
    profile: null,
    offers: new Map(), // offer_id -> {frame, deadline, el, countdown, accept, decline, phase}
    queue: new Map(), // request_id -> {entry, receivedAt, el, waited}
    chats: new Map(), // conversation_id -> {view, tab, button, badge, unread, name}
    selected: null,
  };

  bindConnectionStatus(client, $('#connection-status'));
  bindSignOut($('#sign-out'), ROLE, client);
  bindAuthFailure(client, ROLE);
  const notice = (text) => announce(els.notice, text);
  const shout = (text) => announce(els.alert, text);

  // ------------------------------------------------------------ profile and availability

  function setAvailability(status) {
    state.status = status === 'available' ? 'available' : 'away';
    const on = state.status === 'available';
    els.toggle.setAttribute('aria-checked', String(on));
    els.toggle.dataset.status = state.status;
    els.toggleText.textContent = on ? 'Available' : 'Away';
    els.toggle.disabled = false;
  }

  els.toggle.addEventListener('click', () => {
    const next = state.status === 'available' ? 'away' : 'available';
    if (!client.send({ type: 'availability', status: next })) notice('Not connected. Please try again in a moment.');
  });

  function renderProfile() {
    const p = state.profile || {};
    const user = client.user || {};
    $('#profile-name').textContent = p.name || user.name || '–';
    $('#profile-tags').textContent = p.tags && p.tags.length ? p.tags.join(', ') : 'none yet';
    $('#profile-languages').textContent = p.languages && p.languages.length ? p.languages.join(', ') : '–';
    const active = [...state.chats.values()].filter((c) => !c.view.isEnded).length;
    $('#profile-capacity').textContent = p.max_chats ? `${active} of ${p.max_chats}` : String(active);
  }

  async function loadProfile() {
    try {
      state.profile = await api(token, '/api/specialists/me');
    } catch (err) {
      if (err.status === 401) client.emit('auth_failed', {});
    }
    renderProfile();
  }

  // ------------------------------------------------------------ offers

  function addOffer(frame) {
    if (state.offers.has(frame.offer_id)) return;
    const urgent = frame.priority === 'urgent';
    const countdown = h('p', { class: 'countdown', role: 'timer', testid: 'offer-countdown' });
    const accept = h('button', { type: 'button', class: 'primary', testid: 'offer-accept' }, 'Accept');
    const decline = h('button', { type: 'button', testid: 'offer-decline' }, 'Decline');
    const summary = describe(frame.tags, frame.language);
    accept.setAttribute('aria-label', `Accept offer: ${summary}`);
    decline.setAttribute('aria-label', `Decline offer: ${summary}`);
    const el = h(
      'li',
      { class: ['offer', urgent && 'urgent'], testid: 'offer', dataset: { offerId: frame.offer_id, priority: frame.priority || 'normal' } },
      urgent ? h('p', { class: 'priority-badge', testid: 'offer-priority' }, 'Urgent') : null,
      h('p', { class: 'offer-topics', testid: 'offer-topics' }, summary),
      frame.note ? h('p', { class: 'offer-note', testid: 'offer-note' }, frame.note) : null,
      h('p', { class: 'hint' }, `Waited ${formatDuration(frame.waited_s)} so far`),
      countdown,
      h('div', { class: 'button-row' }, accept, decline),
    );
    const offer = {
      frame,
      deadline: Date.now() + Math.max(0, Number(frame.expires_in_s) || 0) * 1000,
      el,
      countdown,
      accept,
      decline,
      phase: 'open', // open | accepting | declining | gone
    };
    accept.addEventListener('click', () => {
      if (!client.send({ type: 'accept', offer_id: frame.offer_id })) return notice('Not connected.');
      offer.phase = 'accepting';
      accept.disabled = decline.disabled = true;
      accept.textContent = 'Accepting…';
    });
    decline.addEventListener('click', () => {
      if (!client.send({ type: 'decline', offer_id: frame.offer_id })) return notice('Not connected.');
      offer.phase = 'declining';
      accept.disabled = decline.disabled = true;
    });
    state.offers.set(frame.offer_id, offer);
    els.offers.append(el);
    tickOffer(offer);
    renderOfferCount();
    shout(`${urgent ? 'Urgent offer' : 'New offer'}: ${summary}. Expires in ${frame.expires_in_s} seconds.`);
  }

  function removeOffer(offerId, why) {
    const offer = state.offers.get(offerId);
    if (!offer) return;
    state.offers.delete(offerId);
    const hadFocus = offer.el.contains(document.activeElement);
    offer.el.remove();
    renderOfferCount();
    if (why) notice(why);
    if (hadFocus) $('#offers-heading').focus();
  }

  function tickOffer(offer) {
    const left = Math.ceil((offer.deadline - Date.now()) / 1000);
    if (left > 0) {
      offer.countdown.textContent = `Expires in ${left} s`;
      return;
    }
    if (offer.phase === 'gone') return;
    offer.phase = 'gone';
    offer.countdown.textContent = 'Expired';
    offer.el.classList.add('expired');
    offer.accept.disabled = offer.decline.disabled = true;
    setTimeout(() => removeOffer(offer.frame.offer_id), EXPIRED_SHOWN_MS);
  }

  function renderOfferCount() {
    const n = state.offers.size;
    els.offerCount.textContent = String(n);
    show(els.offerCount, n > 0);
    show(els.offersEmpty, n === 0);
    renderTitle();
  }

  // ------------------------------------------------------------ waiting queue

  function renderQueue(requests) {
    const now = Date.now();
    const seen = new Set();
    const order = [];
    for (const entry of requests) {
      seen.add(entry.request_id);
      let item = state.queue.get(entry.request_id);
      if (!item) {
        const badge = h('span', { class: 'priority-badge', testid: 'queue-priority', hidden: true }, 'Urgent');
        const topics = h('span', { class: 'queue-topics', testid: 'queue-topics' });
        const waited = h('span', { class: 'waited', testid: 'queue-waited' });
        const claim = h('button', { type: 'button', testid: 'claim-button' }, 'Claim');
        const el = h(
          'li',
          { class: 'queue-item', testid: 'queue-item', dataset: { requestId: entry.request_id } },
          badge,
          topics,
          waited,
          claim,
        );
        claim.addEventListener('click', () => {
          if (!client.send({ type: 'claim', request_id: entry.request_id })) return notice('Not connected.');
          claim.disabled = true;
          claim.textContent = 'Claiming…';
        });
        item = { el, badge, topics, waited, claim };
        state.queue.set(entry.request_id, item);
      }
      item.entry = entry;
      item.receivedAt = now;
      const urgent = entry.priority === 'urgent';
      item.el.classList.toggle('urgent', urgent);
      item.el.dataset.priority = entry.priority || 'normal';
      const summary = describe(entry.tags, entry.language);
      item.claim.setAttribute('aria-label', `Claim request: ${urgent ? 'urgent, ' : ''}${summary}`);
      show(item.badge, urgent);
      item.topics.textContent = summary;
      tickQueueItem(item, now);
      order.push(item.el);
    }
    for (const [id, item] of state.queue) {
      if (!seen.has(id)) {
        item.el.remove();
        state.queue.delete(id);
      }
    }
    // Reorder only when needed: moving the focused Claim button would drop keyboard focus.
    const current = [...els.queue.children];
    if (current.length !== order.length || order.some((el, i) => current[i] !== el)) {
      const focused = document.activeElement;
      els.queue.append(...order);
      if (focused && els.queue.contains(focused)) focused.focus();
    }
    show(els.queueEmpty, order.length === 0);
  }

  function tickQueueItem(item, now) {
    const waited = item.entry.waited_s + Math.floor((now - item.receivedAt) / 1000);
    item.waited.textContent = `waiting ${formatDuration(waited)}`;
  }

  // ------------------------------------------------------------ chats

  function ensureChat(id, name, tags) {
    let chat = state.chats.get(id);
    if (chat) return chat;
    const badge = h('span', { class: 'badge', testid: 'unread-count', hidden: true }, '0');
    const label = h('span', { class: 'tab-name' }, name || 'Member');
    const status = h('span', { class: 'tab-state', testid: 'chat-tab-state' });
    const button = h(
      'button',
      { type: 'button', class: 'chat-tab', testid: 'chat-tab', dataset: { conversationId: id } },
      label,
      ' ',
      badge,
      status,
    );
    const tab = h('li', {}, button);
    chat = { id, name: name || 'Member', unread: 0, tab, button, badge, status };
    chat.view = new ChatView({
      client,
      conversationId: id,
      selfRole: ROLE,
      peerName: chat.name,
      tags: tags || [],
      isShown: () => state.selected === id,
      onEnded: () => chatEnded(chat),
    });
    show(chat.view.root, false);
    button.addEventListener('click', () => select(id, true));
    state.chats.set(id, chat);
    els.tabs.append(tab);
    els.panels.append(chat.view.root);
    show(els.chatsEmpty, false);
    renderProfile();
    if (!state.selected) select(id, false);
    return chat;
  }

  function select(id, focus) {
    state.selected = id;
    for (const [cid, chat] of state.chats) {
      const on = cid === id;
      show(chat.view.root, on);
      if (on) chat.button.setAttribute('aria-current', 'true');
      else chat.button.removeAttribute('aria-current');
    }
    const chat = state.chats.get(id);
    if (!chat) return;
    setUnread(chat, 0);
    chat.view.maybeRead();
    chat.view.scrollToEnd(true);
    if (focus) chat.view.focus();
  }

  function setUnread(chat, n) {
    chat.unread = n;
    chat.badge.textContent = String(n);
    show(chat.badge, n > 0);
    chat.button.setAttribute('aria-label', `${chat.name}${n ? `, ${n} unread` : ''}${chat.view.isEnded ? ', ended' : ''}`);
    renderTitle();
  }

  function chatEnded(chat) {
    chat.status.textContent = ' (ended)';
    chat.button.classList.add('ended');
    setUnread(chat, chat.unread);
    const close = h('button', { type: 'button', class: 'close-chat', testid: 'close-chat' }, 'Close this chat');
    close.addEventListener('click', () => closeChat(chat.id));
    chat.view.root.append(close);
    renderProfile();
  }

  function closeChat(id) {
    const chat = state.chats.get(id);
    if (!chat) return;
    chat.tab.remove();
    chat.view.root.remove();
    state.chats.delete(id);
    client.forget(id);
    if (state.selected === id) {
      state.selected = null;
      const next = state.chats.keys().next().value;
      if (next) select(next, true);
      else $('#chats-heading').focus();
    }
    show(els.chatsEmpty, state.chats.size === 0);
    renderTitle();
  }

  function renderTitle() {
    let unread = 0;
    for (const chat of state.chats.values()) unread += chat.unread;
    const parts = [];
    if (state.offers.size) parts.push(`${state.offers.size} offer${state.offers.size > 1 ? 's' : ''}`);
    if (unread) parts.push(`${unread} unread`);
    document.title = parts.length ? `(${parts.join(', ')}) ${BASE_TITLE}` : BASE_TITLE;
  }

  // ------------------------------------------------------------ server → page

  client.on('welcome', (w) => {
    els.userName.textContent = w.user && w.user.name ? `Signed in as ${w.user.name}` : '';
    setAvailability(w.availability || state.status);
    const offered = new Set((w.offers || []).map((o) => o.offer_id));
    for (const id of [...state.offers.keys()]) if (!offered.has(id)) removeOffer(id);
    for (const o of w.offers || []) addOffer(o);
    const active = new Set();
    for (const c of w.conversations || []) {
      active.add(c.id);
      ensureChat(c.id, c.peer && c.peer.name, c.tags);
    }
    for (const chat of state.chats.values()) {
      if (!active.has(chat.id) && !chat.view.isEnded) chat.view.ended({ by: 'system', reason: 'ended' }, { guessed: true });
    }
    loadProfile();
  });

  client.on('availability', (f) => {
    setAvailability(f.status);
    if (f.reason === 'missed_offers') notice('You were set to away because offers went unanswered.');
    else if (f.reason) notice(`You are now ${f.status} (${f.reason.replace(/_/g, ' ')}).`);
  });

  client.on('offer', addOffer);
  client.on('declined', (f) => removeOffer(f.offer_id, 'Offer declined.'));
  client.on('offer_revoked', (f) => {
    const why = f.reason === 'cancelled' ? 'the member cancelled' : 'someone else took the request';
    removeOffer(f.offer_id, `An offer was withdrawn: ${why}.`);
  });
  client.on('queue', (f) => renderQueue(Array.isArray(f.requests) ? f.requests : []));

  client.on('conversation_started', ({ conversation }) => {
    const accepting = [...state.offers.values()].find((o) => o.phase === 'accepting');
    if (accepting) removeOffer(accepting.frame.offer_id);
    const name = conversation.member && conversation.member.alias;
    const fresh = !state.chats.has(conversation.id);
    const chat = ensureChat(conversation.id, name, conversation.tags);
    if (fresh) {
      shout(`New chat with ${chat.name}.`);
      if (state.selected === conversation.id) chat.view.focus();
    }
  });

  const chatFor = (f) => state.chats.get(f.conversation_id);
  client.on('message', (m) => {
    const chat = chatFor(m);
    if (!chat) return;
    chat.view.addMessage(m);
    const fromPeer = m.sender && m.sender.role !== ROLE;
    if (fromPeer && !(state.selected === chat.id && document.visibilityState === 'visible')) {
      setUnread(chat, chat.unread + 1);
    }
  });
  client.on('ack', (f) => chatFor(f)?.view.acked(f));
  client.on('send_failed', (f) => chatFor(f)?.view.sendFailed(f));
  client.on('typing', (f) => chatFor(f)?.view.peerTyping());
  client.on('read', (f) => chatFor(f)?.view.peerRead(f.seq));
  client.on('peer_status', (f) => chatFor(f)?.view.peerStatus(f.status));
  client.on('conversation_ended', (f) => chatFor(f)?.view.ended(f));

  client.on('error', (e) => {
    const req = e.request || {};
    if (req.type === 'accept' || req.type === 'decline') {
      const offer = state.offers.get(req.offer_id);
      if (e.code === 'offer_expired' || e.code === 'not_found') {
        removeOffer(req.offer_id, 'That offer has expired or was taken by someone else.');
      } else if (offer) {
        offer.phase = 'open';
        offer.accept.disabled = offer.decline.disabled = false;
        offer.accept.textContent = 'Accept';
        notice(e.message || 'The offer could not be accepted.');
      }
      return;
    }
    if (req.type === 'claim') {
      const item = state.queue.get(req.request_id);
      if (item) {
        item.claim.disabled = false;
        item.claim.textContent = 'Claim';
      }
      notice(e.code === 'already_claimed' ? 'Someone else already took that request.' : e.message || 'Could not claim that request.');
      return;
    }
    if (e.message) notice(e.message);
  });
  client.on('forbidden', () => notice('The server refused this connection. Please sign in again.'));

  // ------------------------------------------------------------ clocks and visibility

  setInterval(() => {
    const now = Date.now();
    for (const offer of state.offers.values()) tickOffer(offer);
    for (const item of state.queue.values()) tickQueueItem(item, now);
  }, 1000);

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible' || !state.selected) return;
    const chat = state.chats.get(state.selected);
    if (chat) {
      setUnread(chat, 0);
      chat.view.maybeRead();
    }
  });

  client.subscribe({ type: 'queue_watch' });
  client.connect();
}
