// Member page: ask for a peer, wait in line, chat, end, rate. Crisis resources are one
// click away in the header on every screen.

import { api, formatWait, PeerChatClient, requireToken } from '/static/peerchat.js';
import { setupMyData } from '/static/mydata.js';
import { $, announce, bindAuthFailure, bindConnectionStatus, bindSignOut, ChatView, clear, h, show } from '/static/ui.js';

const ROLE = 'member';
// The conversation waiting for a rating survives a reload of this tab (an id, not a secret).
const FEEDBACK_KEY = 'peerchat.member.feedback';

const FALLBACK_RESOURCES = [
  {
    name: '988 Suicide & Crisis Lifeline (US)',
    contact: 'Call or text 988',
    description: 'Free, confidential support, 24 hours a day.',
  },
  {
    name: 'Emergency services',
    contact: '911 (US) / 112 (EU)',
    description: 'If you or someone else is in immediate danger.',
  },
];

const token = requireToken(ROLE);
if (token) main(token);

function main(token) {
  const client = new PeerChatClient(token);
  const els = {
    notice: $('#notice'),
    start: $('#start-view'),
    form: $('#request-form'),
    requestButton: $('#request-button'),
    requestError: $('#request-error'),
    queue: $('#queue-view'),
    queueHeading: $('#queue-heading'),
    position: $('#queue-position'),
    wait: $('#queue-wait'),
    topics: $('#queue-topics'),
    cancel: $('#cancel-button'),
    chatSlot: $('#chat-slot'),
    rating: $('#rating-view'),
    ratingForm: $('#rating-form'),
    ratingHeading: $('#rating-heading'),
    ratingError: $('#rating-error'),
    ratingSkip: $('#rating-skip'),
    thanks: $('#thanks-view'),
    thanksHeading: $('#thanks-heading'),
    thanksText: $('#thanks-text'),
    again: $('#again-button'),
    userName: $('#user-name'),
  };

  const state = {
    view: 'start', // start | queued | chat | ended | thanks
    requestId: null,
    chat: null, // ChatView of the current (or just ended) conversation
    feedbackFor: sessionStorage.getItem(FEEDBACK_KEY),
  };

  bindConnectionStatus(client, $('#connection-status'));
  bindSignOut($('#sign-out'), ROLE, client);
  bindAuthFailure(client, ROLE);
  setupCrisisPanel(token);
  setupMyData(token, client, ROLE);

  function setView(view) {
    // A notice belongs to the screen it was given on ("Ana has joined" must not linger on
    // the rating or thank-you screen); one announced with this change still arrives.
    if (view !== state.view) els.notice.textContent = '';
    state.view = view;
    show(els.start, view === 'start');
    show(els.queue, view === 'queued');
    show(els.chatSlot, view === 'chat' || view === 'ended');
    show(els.rating, view === 'ended');
    show(els.thanks, view === 'thanks');
    els.requestButton.disabled = false;
  }

  function notice(text) {
    announce(els.notice, text);
  }

  function openChat(id, peerName, tags) {
    if (state.chat && state.chat.id === id) return;
    state.chat = new ChatView({
      client,
      conversationId: id,
      selfRole: ROLE,
      peerName,
      tags: tags || [],
      onEnded: () => showRating(id),
    });
    clear(els.chatSlot).append(state.chat.root);
    setView('chat');
    state.chat.focus();
  }

  function showRating(id) {
    state.feedbackFor = id;
    sessionStorage.setItem(FEEDBACK_KEY, id);
    els.ratingForm.reset();
    els.ratingError.textContent = '';
    setView('ended');
    els.ratingHeading.focus();
  }

  function finishFeedback(text) {
    state.feedbackFor = null;
    sessionStorage.removeItem(FEEDBACK_KEY);
    if (state.chat) client.forget(state.chat.id);
    els.thanksText.textContent = text;
    setView('thanks');
    els.thanksHeading.focus();
  }

  function showQueued({ request_id: requestId, position, estimated_wait_s: wait, tags }) {
    state.requestId = requestId;
    updateQueue(position, wait);
    if (tags) els.topics.textContent = tags.length ? `Topics: ${tags.join(', ')}` : '';
    if (state.view !== 'queued') {
      setView('queued');
      els.queueHeading.focus();
    }
  }

  function updateQueue(position, wait) {
    const pos = Number.isInteger(position) ? String(position) : '–';
    const eta = formatWait(wait);
    if (els.position.textContent !== pos) els.position.textContent = pos;
    if (els.wait.textContent !== eta) els.wait.textContent = eta;
  }

  // ------------------------------------------------------------ page → server

  els.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    els.requestError.textContent = '';
    const tags = [...els.form.querySelectorAll('input[name="tag"]:checked')].map((i) => i.value);
    const language = $('#language').value;
    const note = $('#note').value.trim();
    const frame = { type: 'request', tags };
    if (language) frame.language = language;
    if (note) frame.note = note;
    if (!client.send(frame)) {
      els.requestError.textContent = 'Not connected yet. Please try again in a moment.';
      return;
    }
    els.requestButton.disabled = true;
    els.topics.textContent = tags.length ? `Topics: ${tags.join(', ')}` : '';
  });

  els.cancel.addEventListener('click', () => {
    if (!state.requestId) return;
    if (!client.send({ type: 'cancel', request_id: state.requestId })) notice('Not connected. Please try again in a moment.');
  });

  els.ratingForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const chosen = els.ratingForm.querySelector('input[name="rating"]:checked');
    if (!chosen) {
      els.ratingError.textContent = 'Please choose a rating from 1 to 5, or skip.';
      return;
    }
    const comment = $('#rating-comment').value.trim();
    const frame = { type: 'feedback', conversation_id: state.feedbackFor, rating: Number(chosen.value) };
    if (comment) frame.comment = comment;
    if (!client.send(frame)) els.ratingError.textContent = 'Not connected. Please try again in a moment.';
  });

  els.ratingSkip.addEventListener('click', () => finishFeedback('Take care of yourself. You can come back any time.'));

  els.again.addEventListener('click', () => {
    state.chat = null;
    clear(els.chatSlot);
    setView('start');
    $('#start-heading').focus();
  });

  // ------------------------------------------------------------ server → page

  client.on('welcome', (w) => {
    els.userName.textContent = w.user && w.user.name ? `Signed in as ${w.user.name}` : '';
    const conv = (w.conversations || [])[0];
    const request = (w.requests || [])[0];
    if (conv) {
      openChat(conv.id, conv.peer && conv.peer.name, conv.tags);
      return;
    }
    if (state.view === 'chat' && state.chat && !state.chat.isEnded) {
      // It ended while we were away; the end frame itself was not replayed.
      state.chat.ended({ by: 'system', reason: 'ended' }, { guessed: true });
      return;
    }
    if (request) {
      showQueued(request);
      return;
    }
    if (state.view === 'queued') {
      notice('Your request is no longer open. You can ask again.');
      setView('start');
      return;
    }
    if (state.view === 'start' && state.feedbackFor) {
      // Reloaded before rating: show that conversation again (resume replays it) and ask.
      openChat(state.feedbackFor, 'your peer', []);
      state.chat.ended({ by: 'system', reason: 'ended' }, { guessed: true });
    }
  });

  client.on('queued', showQueued);
  client.on('queue_update', (f) => {
    if (state.view === 'chat') return;
    if (state.view !== 'queued' || f.request_id !== state.requestId) showQueued(f);
    else updateQueue(f.position, f.estimated_wait_s);
  });
  client.on('cancelled', (f) => {
    if (f.request_id !== state.requestId) return;
    state.requestId = null;
    setView('start');
    notice(f.reason && f.reason !== 'cancelled' ? `Your request was closed (${f.reason}).` : 'Your request was cancelled.');
    $('#start-heading').focus();
  });

  client.on('conversation_started', ({ conversation }) => {
    state.requestId = null;
    const name = conversation.specialist && conversation.specialist.name;
    openChat(conversation.id, name, conversation.tags);
    notice(`${name || 'A peer'} has joined. You can start chatting.`);
  });

  const forChat = (f) => (state.chat && state.chat.id === f.conversation_id ? state.chat : null);
  client.on('message', (m) => forChat(m)?.addMessage(m));
  client.on('ack', (f) => forChat(f)?.acked(f));
  client.on('send_failed', (f) => forChat(f)?.sendFailed(f));
  client.on('typing', (f) => forChat(f)?.peerTyping());
  client.on('read', (f) => forChat(f)?.peerRead(f.seq));
  client.on('peer_status', (f) => forChat(f)?.peerStatus(f.status));
  client.on('conversation_ended', (f) => forChat(f)?.ended(f));
  client.on('feedback_saved', () => finishFeedback('Thank you for your feedback. Take care of yourself.'));

  client.on('error', (e) => {
    const type = e.request && e.request.type;
    if (type === 'request') {
      els.requestButton.disabled = false;
      els.requestError.textContent = e.message || 'Your request could not be placed.';
    } else if (type === 'feedback') {
      if (e.code === 'not_found' || e.code === 'invalid_state') finishFeedback('Take care of yourself.');
      else els.ratingError.textContent = e.message || 'Your feedback could not be saved.';
    } else if (type === 'cancel') {
      notice(e.message || 'The request could not be cancelled.');
    } else if (type === 'end') {
      notice(e.message || 'The conversation could not be ended.');
    } else if (e.message) {
      notice(e.message);
    }
  });
  client.on('forbidden', () => notice('This page refused the connection. Please sign in again.'));

  document.addEventListener('visibilitychange', () => state.chat && state.chat.maybeRead());
  window.addEventListener('focus', () => state.chat && state.chat.maybeRead());

  if (state.feedbackFor) client.follow(state.feedbackFor, 0);
  setView('start');
  client.connect();
}

// ------------------------------------------------------------------ crisis resources

function setupCrisisPanel(token) {
  const button = $('#crisis-button');
  const panel = $('#crisis-panel');
  const list = $('#crisis-resources');
  let loaded = false;

  function render(resources) {
    clear(list);
    for (const r of resources) {
      if (!r || typeof r !== 'object') continue;
      const li = h(
        'li',
        { class: 'crisis-item', testid: 'crisis-resource' },
        h('strong', { class: 'crisis-name' }, String(r.name || '')),
        h('span', { class: 'crisis-contact' }, String(r.contact || '')),
      );
      // Short numbers in the contact (988, 911, 112) become call links: digits only, so
      // nothing the server sends can turn into a script URL.
      const numbers = String(r.contact || '').match(/\b\d{3,15}\b/g) || [];
      const links = h('span', { class: 'crisis-links' });
      for (const n of [...new Set(numbers)]) {
        links.append(h('a', { href: `tel:${n}`, class: 'call-link', testid: 'crisis-call' }, `Call ${n}`));
        if (/text/i.test(String(r.contact || ''))) {
          links.append(h('a', { href: `sms:${n}`, class: 'call-link' }, `Text ${n}`));
        }
      }
      if (links.childNodes.length) li.append(links);
      if (r.description) li.append(h('span', { class: 'crisis-desc' }, String(r.description)));
      list.append(li);
    }
  }

  async function load() {
    render(FALLBACK_RESOURCES);
    try {
      const data = await api(token, '/api/crisis-resources');
      if (data && Array.isArray(data.resources) && data.resources.length) render(data.resources);
    } catch {
      /* the built-in list is already showing */
    }
    loaded = true;
  }

  function setOpen(open) {
    show(panel, open);
    button.setAttribute('aria-expanded', String(open));
    if (open) panel.focus();
  }

  render(FALLBACK_RESOURCES);
  load();
  button.addEventListener('click', () => {
    const open = panel.hidden;
    setOpen(open);
    if (open && !loaded) load();
  });
  $('#crisis-close').addEventListener('click', () => {
    setOpen(false);
    button.focus();
  });
  panel.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      setOpen(false);
      button.focus();
    }
  });
}
