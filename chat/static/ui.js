// DOM helpers and the chat view shared by the member and specialist pages.
//
// Every string that came from a person or the server goes into the page as a text node:
// h() has no way to set HTML, event-handler attributes or inline styles, so a message body
// like `<img src=x onerror=...>` can only ever show as those characters.

import { clearToken, formatTime, loginUrl } from '/static/peerchat.js';

const SVG_NS = 'http://www.w3.org/2000/svg';

function setProps(el, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    const lower = key.toLowerCase();
    if (lower.startsWith('on') || lower === 'style' || lower === 'innerhtml' || lower === 'srcdoc') {
      throw new Error(`h(): refusing to set ${key}`);
    }
    if (key === 'text') el.textContent = String(value);
    else if (key === 'class') el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (key === 'testid') el.setAttribute('data-testid', value);
    else if (key === 'dataset') for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'selected') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// h('p', {class: 'note', testid: 'x'}, 'text', otherNode): an element built with DOM APIs.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.toLowerCase().startsWith('on') || key === 'style' || key === 'href') throw new Error(`s(): refusing ${key}`);
    if (key === 'text') el.textContent = String(value);
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function show(el, visible = true) {
  el.hidden = !visible;
}

// A short-lived message in a polite (or assertive) live region.
export function announce(region, text) {
  region.textContent = '';
  // A fresh text node after a tick makes screen readers repeat identical announcements.
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

// ------------------------------------------------------------------ page chrome

const STATUS_TEXT = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  closed: 'Disconnected',
};

export function bindConnectionStatus(client, el) {
  client.on('status', ({ state }) => {
    el.textContent = STATUS_TEXT[state] || state;
    el.dataset.state = state;
  });
}

export function bindSignOut(button, role, client) {
  button.addEventListener('click', () => {
    if (client) client.stop();
    clearToken(role);
    location.assign(loginUrl(role));
  });
}

export function bindAuthFailure(client, role) {
  client.on('auth_failed', ({ welcomed } = {}) => {
    clearToken(role);
    if (!welcomed || sessionStorage.getItem('peerchat.login.' + role)) {
      location.replace(loginUrl(role, 'expired'));
      return;
    }
    // Signed in through the organisation's portal, and that sign-in ended (expired or
    // revoked): say so plainly, in place; there is no login page of ours to go to.
    const main = document.getElementById('main');
    const notice = h(
      'div',
      { class: 'notice', role: 'alert', 'data-testid': 'signed-out' },
      'You are signed out: your sign-in expired or was ended. Sign in again through your organisation to continue.',
    );
    if (main) main.replaceChildren(notice);
    else document.body.prepend(notice);
  });
}

// ------------------------------------------------------------------ chat view

const PEER_STATUS_TEXT = {
  connected: 'is connected',
  reconnecting: 'lost their connection and is reconnecting…',
  gone: 'has left (their connection did not come back)',
};
const TYPING_SHOWN_MS = 5000;
const MAX_BODY_CHARS = 4000;

/**
 * One conversation: its messages, typing indicator, read receipts, composer and end
 * controls. The page owns the client; the view calls client.sendMessage / typing /
 * markRead / send({type: 'end'}), and the page forwards the frames for this conversation
 * to addMessage / acked / sendFailed / peerTyping / peerRead / peerStatus / ended.
 */
export class ChatView {
  constructor({ client, conversationId, selfRole, peerName, tags = [], isShown = () => true, onEnded }) {
    this.client = client;
    this.id = conversationId;
    this.selfRole = selfRole;
    this.peerName = peerName || (selfRole === 'member' ? 'Your peer' : 'Member');
    this.isShown = isShown;
    this.onEnded = onEnded;
    this.isEnded = false;
    this.endGuessed = false;
    this.peerReadSeq = 0;
    this.typingTimer = null;
    this.nodes = new Map(); // seq -> li of a stored message
    this.pendingNodes = new Map(); // client_msg_id -> li not yet stored
    this.build(tags);
    for (const frame of client.pendingFor(conversationId)) this.addPending(frame.client_msg_id, frame.body);
  }

  build(tags) {
    const uid = 'c' + Math.random().toString(36).slice(2, 9);
    this.heading = h('h2', { id: `${uid}-h`, class: 'chat-title', testid: 'chat-title' }, `Chat with ${this.peerName}`);
    this.peerStatusEl = h('p', { class: 'peer-status', role: 'status', testid: 'peer-status' });
    this.list = h('ol', {
      class: 'messages',
      role: 'log',
      'aria-live': 'polite',
      'aria-relevant': 'additions',
      'aria-label': `Messages with ${this.peerName}`,
      tabindex: '0',
      testid: 'messages',
    });
    this.typingEl = h('p', { class: 'typing', testid: 'typing-indicator', 'aria-live': 'polite', hidden: true });
    this.endedEl = h('p', { class: 'ended-notice', role: 'status', testid: 'ended-notice', hidden: true });
    this.input = h('textarea', {
      id: `${uid}-input`,
      rows: '2',
      maxlength: String(MAX_BODY_CHARS),
      autocomplete: 'off',
      testid: 'composer-input',
      'aria-describedby': `${uid}-hint`,
    });
    this.sendButton = h('button', { type: 'submit', class: 'primary', testid: 'send-button' }, 'Send');
    this.form = h(
      'form',
      { class: 'composer', testid: 'composer', 'aria-label': 'Write a message' },
      h('label', { for: `${uid}-input`, class: 'visually-hidden' }, `Message to ${this.peerName}`),
      this.input,
      this.sendButton,
      h('p', { id: `${uid}-hint`, class: 'hint' }, 'Enter sends, Shift+Enter starts a new line.'),
    );
    this.endButton = h('button', { type: 'button', class: 'danger', testid: 'end-button' }, 'End chat');
    this.confirmYes = h('button', { type: 'button', class: 'danger', testid: 'end-confirm' }, 'Yes, end it');
    this.confirmNo = h('button', { type: 'button', testid: 'end-cancel' }, 'Keep chatting');
    this.confirmBox = h(
      'div',
      { class: 'confirm', role: 'group', 'aria-label': 'Confirm ending the chat', hidden: true },
      h('span', {}, 'End this conversation?'),
      this.confirmYes,
      this.confirmNo,
    );
    this.actions = h('div', { class: 'chat-actions' }, this.endButton, this.confirmBox);
    const tagLine = tags.length ? h('p', { class: 'tags', testid: 'chat-tags' }, 'Topics: ', tags.join(', ')) : null;
    this.root = h(
      'section',
      { class: 'chat', 'aria-labelledby': `${uid}-h`, testid: 'chat', dataset: { conversationId: this.id } },
      h('div', { class: 'chat-head' }, this.heading, this.actions),
      tagLine,
      this.peerStatusEl,
      this.list,
      this.typingEl,
      this.endedEl,
      this.form,
    );

    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submit();
    });
    this.input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener('input', () => {
      if (this.input.value.trim() && !this.isEnded) this.client.typing(this.id);
    });
    this.endButton.addEventListener('click', () => {
      show(this.endButton, false);
      show(this.confirmBox, true);
      this.confirmNo.focus();
    });
    this.confirmNo.addEventListener('click', () => this.closeConfirm());
    this.confirmBox.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') this.closeConfirm();
    });
    this.confirmYes.addEventListener('click', () => {
      this.client.send({ type: 'end', conversation_id: this.id });
      this.closeConfirm(false);
      this.endButton.disabled = true;
      this.endButton.textContent = 'Ending…';
    });
  }

  closeConfirm(focus = true) {
    show(this.confirmBox, false);
    show(this.endButton, true);
    if (focus) this.endButton.focus();
  }

  focus() {
    if (!this.isEnded) this.input.focus();
  }

  submit() {
    const body = this.input.value;
    if (!body.trim() || this.isEnded) return;
    const cmid = this.client.sendMessage(this.id, body);
    this.addPending(cmid, body);
    this.input.value = '';
  }

  nearBottom() {
    return this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 80;
  }

  scrollToEnd(force) {
    if (force || this.nearBottom()) this.list.scrollTop = this.list.scrollHeight;
  }

  messageNode({ own, name, body, sentAt, seq, cmid }) {
    const receipt = own ? h('span', { class: 'receipt', testid: 'receipt' }) : null;
    const li = h(
      'li',
      { class: ['message', own ? 'own' : 'peer'], testid: 'message' },
      h('span', { class: 'sender', testid: 'message-sender' }, own ? 'You' : name),
      h('p', { class: 'body', testid: 'message-body' }, body),
      h(
        'span',
        { class: 'meta' },
        sentAt ? h('time', { datetime: sentAt }, formatTime(sentAt)) : null,
        receipt ? ' ' : null,
        receipt,
      ),
    );
    li.dataset.senderRole = own ? this.selfRole : 'peer';
    if (seq) li.dataset.seq = String(seq);
    if (cmid) li.dataset.clientMsgId = cmid;
    li.receipt = receipt;
    return li;
  }

  addPending(cmid, body) {
    if (this.pendingNodes.has(cmid)) return;
    const li = this.messageNode({ own: true, name: 'You', body, cmid });
    li.classList.add('pending');
    li.receipt.textContent = 'Sending…';
    li.dataset.state = 'pending';
    this.pendingNodes.set(cmid, li);
    this.list.append(li);
    this.scrollToEnd(true);
  }

  // A stored message, handed over by the client once and in seq order.
  addMessage(m) {
    if (this.nodes.has(m.seq)) return;
    const own = m.sender && m.sender.role === this.selfRole;
    const atEnd = this.nearBottom();
    const li = this.messageNode({
      own,
      name: (m.sender && m.sender.name) || 'Peer',
      body: typeof m.body === 'string' ? m.body : '',
      sentAt: m.sent_at,
      seq: m.seq,
      cmid: m.client_msg_id,
    });
    const pending = own && m.client_msg_id ? this.pendingNodes.get(m.client_msg_id) : null;
    const firstPending = this.pendingNodes.values().next().value;
    if (firstPending) this.list.insertBefore(li, firstPending);
    else this.list.append(li);
    if (pending) {
      pending.remove();
      this.pendingNodes.delete(m.client_msg_id);
    }
    this.nodes.set(m.seq, li);
    if (own) this.updateReceipt(li, m.seq);
    else this.hideTyping();
    this.scrollToEnd(atEnd || own);
    this.maybeRead();
  }

  acked({ client_msg_id: cmid, seq }) {
    const li = this.pendingNodes.get(cmid);
    if (!li) return;
    li.classList.remove('pending');
    li.dataset.seq = String(seq);
    this.updateReceipt(li, seq);
  }

  sendFailed({ client_msg_id: cmid, message, code }) {
    const li = this.pendingNodes.get(cmid);
    if (!li) return;
    this.pendingNodes.delete(cmid);
    li.classList.remove('pending');
    li.classList.add('failed');
    li.dataset.state = 'failed';
    li.receipt.textContent = code === 'too_large' ? 'Not sent: the message is too long.' : `Not sent: ${message || code}`;
  }

  updateReceipt(li, seq) {
    if (!li.receipt) return;
    const read = seq <= this.peerReadSeq;
    li.receipt.textContent = read ? 'Read' : 'Sent';
    li.dataset.state = read ? 'read' : 'sent';
    li.classList.toggle('read', read);
  }

  peerRead(seq) {
    if (!Number.isInteger(seq) || seq <= this.peerReadSeq) return;
    this.peerReadSeq = seq;
    for (const li of this.list.querySelectorAll('li.own')) {
      const s = Number(li.dataset.seq);
      if (s) this.updateReceipt(li, s);
    }
  }

  peerTyping() {
    if (this.isEnded) return;
    this.typingEl.textContent = `${this.peerName} is typing…`;
    show(this.typingEl, true);
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.hideTyping(), TYPING_SHOWN_MS);
  }

  hideTyping() {
    clearTimeout(this.typingTimer);
    show(this.typingEl, false);
  }

  peerStatus(status) {
    const text = PEER_STATUS_TEXT[status];
    if (!text) return;
    this.peerStatusEl.textContent = `${this.peerName} ${text}`;
    this.peerStatusEl.dataset.status = status;
    // "connected" is the normal case: say it once, then fade to nothing.
    if (status === 'connected') {
      setTimeout(() => {
        if (this.peerStatusEl.dataset.status === 'connected') this.peerStatusEl.textContent = '';
      }, 4000);
    }
  }

  // Send `read` for the highest seq shown, when a person can actually see it.
  maybeRead() {
    if (this.isEnded) return;
    if (document.visibilityState === 'visible' && this.isShown()) this.client.markRead(this.id);
  }

  // `guessed`: the page inferred the end (the chat was missing from `welcome`). The resume
  // then replays the real `conversation_ended`, which replaces the guess's wording.
  ended({ by, reason }, { guessed = false } = {}) {
    if (this.isEnded) {
      if (this.endGuessed && !guessed) {
        this.endGuessed = false;
        this.endedEl.textContent = this.endText(by, reason);
      }
      return;
    }
    this.isEnded = true;
    this.endGuessed = guessed;
    this.hideTyping();
    this.endedEl.textContent = this.endText(by, reason);
    show(this.endedEl, true);
    show(this.form, false);
    show(this.actions, false);
    this.root.classList.add('is-ended');
    if (this.onEnded) this.onEnded();
  }

  endText(by, reason) {
    const who = by === this.selfRole ? 'You' : by === 'system' ? 'The service' : by === 'supervisor' ? 'A supervisor' : this.peerName;
    const why = reason && reason !== 'ended' ? ` (${reason.replace(/_/g, ' ')})` : '';
    return `${who} ended the conversation${why}.`;
  }
}
