// One conversation on screen, the same on the member and specialist pages: its messages,
// typing indicator, read receipts, composer and end controls.

import { ErrorCode } from '../codes.js';
import { buildChat, endedText, messageItem, renamePeer, serviceLine, wireControls } from './chat-dom.js';
import { bidi, show } from './dom.js';
import { t, tParts } from './i18n.js';

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */
/** @typedef {import('../client/line.js').Message} Message */
/** @typedef {import('./chat-dom.js').MessageItem} MessageItem */

const PEER_STATUS_TEXT = {
  connected: 'chat.peer_connected',
  reconnecting: 'chat.peer_reconnecting',
  gone: 'chat.peer_gone',
};
const TYPING_SHOWN_MS = 5000;

/**
 * The page owns the client; the view calls client.sendMessage / typing / markRead /
 * send({type: 'end'}), and chat-wiring.js forwards the frames for this conversation to
 * addMessage / acked / sendFailed / peerTyping / peerRead / peerStatus / ended.
 */
export class ChatView {
  /**
   * @param {{client: PeerChatClient, conversationId: string, selfRole: string, peerName?: string,
   *   tags?: string[], isShown?: () => boolean, onEnded?: () => void}} options
   */
  constructor({ client, conversationId, selfRole, peerName, tags = [], isShown = () => true, onEnded }) {
    this.client = client;
    this.id = conversationId;
    this.selfRole = selfRole;
    this.peerName = peerName || (selfRole === 'member' ? t('chat.your_peer') : t('chat.member'));
    this.isShown = isShown;
    this.onEnded = onEnded;
    this.isEnded = false;
    this.endGuessed = false;
    this.peerReadSeq = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.typingTimer = undefined;
    /** @type {Map<number, MessageItem>} seq -> item of a stored message */
    this.nodes = new Map();
    /** @type {Map<string, MessageItem>} client_msg_id -> item not yet stored */
    this.pendingNodes = new Map();
    this.ui = buildChat(this.peerName, conversationId, tags);
    this.root = this.ui.root;
    this.list = this.ui.list;
    wireControls(this);
    for (const frame of client.pendingFor(conversationId)) this.addPending(frame.client_msg_id, frame.body);
  }

  closeConfirm(focus = true) {
    show(this.ui.confirmBox, false);
    show(this.ui.endButton, true);
    if (focus) this.ui.endButton.focus();
  }

  focus() {
    if (!this.isEnded) this.ui.input.focus();
  }

  submit() {
    const body = this.ui.input.value;
    if (!body.trim() || this.isEnded) return;
    const cmid = this.client.sendMessage(this.id, body);
    this.addPending(cmid, body);
    this.ui.input.value = '';
  }

  nearBottom() {
    return this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 80;
  }

  /** @param {boolean} force */
  scrollToEnd(force) {
    if (force || this.nearBottom()) this.list.scrollTop = this.list.scrollHeight;
  }

  /**
   * @param {string} cmid
   * @param {string} body
   */
  addPending(cmid, body) {
    if (this.pendingNodes.has(cmid)) return;
    const li = messageItem({ own: true, selfRole: this.selfRole, name: t('chat.you'), body, cmid });
    li.classList.add('pending');
    if (li.receipt) li.receipt.textContent = t('chat.sending');
    li.dataset.state = 'pending';
    this.pendingNodes.set(cmid, li);
    this.list.append(li);
    this.scrollToEnd(true);
  }

  /**
   * A stored message, handed over by the client once and in seq order.
   * @param {Message} m
   */
  addMessage(m) {
    if (this.nodes.has(m.seq)) return;
    const own = Boolean(m.sender && m.sender.role === this.selfRole);
    const atEnd = this.nearBottom();
    const li = messageItem({
      own,
      selfRole: this.selfRole,
      name: (m.sender && m.sender.name) || t('chat.peer'),
      body: typeof m.body === 'string' ? m.body : '',
      sentAt: m.sent_at,
      seq: m.seq,
      cmid: m.client_msg_id,
    });
    const pending = own && m.client_msg_id ? this.pendingNodes.get(m.client_msg_id) : null;
    const firstPending = this.pendingNodes.values().next().value;
    if (firstPending) this.list.insertBefore(li, firstPending);
    else this.list.append(li);
    if (pending && m.client_msg_id) {
      pending.remove();
      this.pendingNodes.delete(m.client_msg_id);
    }
    this.nodes.set(m.seq, li);
    if (own) this.updateReceipt(li, m.seq);
    else this.hideTyping();
    this.scrollToEnd(atEnd || own);
    this.maybeRead();
  }

  /** @param {{client_msg_id: string, seq: number}} ack */
  acked({ client_msg_id: cmid, seq }) {
    const li = this.pendingNodes.get(cmid);
    if (!li) return;
    li.classList.remove('pending');
    li.dataset.seq = String(seq);
    this.updateReceipt(li, seq);
  }

  /** @param {{client_msg_id: string, message?: string, code?: string}} failure */
  sendFailed({ client_msg_id: cmid, message, code }) {
    const li = this.pendingNodes.get(cmid);
    if (!li || !li.receipt) return;
    this.pendingNodes.delete(cmid);
    li.classList.remove('pending');
    li.classList.add('failed');
    li.dataset.state = 'failed';
    li.receipt.textContent = code === ErrorCode.TOO_LARGE ? t('chat.not_sent_too_long') : t('chat.not_sent', { why: message || code || '' });
  }

  /**
   * @param {MessageItem} li
   * @param {number} seq
   */
  updateReceipt(li, seq) {
    if (!li.receipt) return;
    const read = seq <= this.peerReadSeq;
    li.receipt.textContent = read ? t('chat.read') : t('chat.sent');
    li.dataset.state = read ? 'read' : 'sent';
    li.classList.toggle('read', read);
  }

  /** @param {number} seq */
  peerRead(seq) {
    if (!Number.isInteger(seq) || seq <= this.peerReadSeq) return;
    this.peerReadSeq = seq;
    for (const li of /** @type {NodeListOf<MessageItem>} */ (this.list.querySelectorAll('li.own'))) {
      const s = Number(li.dataset.seq);
      if (s) this.updateReceipt(li, s);
    }
  }

  peerTyping() {
    if (this.isEnded) return;
    this.ui.typingEl.replaceChildren(...tParts('chat.typing', { name: bidi(this.peerName) }));
    show(this.ui.typingEl, true);
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.hideTyping(), TYPING_SHOWN_MS);
  }

  hideTyping() {
    clearTimeout(this.typingTimer);
    show(this.ui.typingEl, false);
  }

  /** @param {string} status */
  peerStatus(status) {
    const text = PEER_STATUS_TEXT[/** @type {keyof PEER_STATUS_TEXT} */ (status)];
    if (!text) return;
    const el = this.ui.peerStatusEl;
    el.replaceChildren(...tParts(text, { name: bidi(this.peerName) }));
    el.dataset.status = status;
    // "connected" is the normal case: say it once, then fade to nothing.
    if (status === 'connected') {
      setTimeout(() => {
        if (el.dataset.status === 'connected') el.textContent = '';
      }, 4000);
    }
  }

  /**
   * A line from the service in the log (after everything shown so far, before messages
   * still being sent); with `peerName`, the peer is that person from now on.
   * @param {(Node | string)[]} parts
   * @param {string} [peerName]
   */
  serviceLine(parts, peerName) {
    const firstPending = this.pendingNodes.values().next().value;
    this.list.insertBefore(serviceLine(parts), firstPending || null);
    if (peerName) renamePeer(this.ui, (this.peerName = peerName));
    this.scrollToEnd(true);
  }

  /** Send `read` for the highest seq shown, when a person can actually see it. */
  maybeRead() {
    if (this.isEnded) return;
    if (document.visibilityState === 'visible' && this.isShown()) this.client.markRead(this.id);
  }

  /**
   * `guessed`: the page inferred the end (the chat was missing from `welcome`). The resume
   * then replays the real `conversation_ended`, which replaces the guess's wording.
   * @param {{by?: string, reason?: string}} end
   * @param {{guessed?: boolean}} [how]
   */
  ended({ by, reason }, { guessed = false } = {}) {
    const text = () => endedText({ by, reason, selfRole: this.selfRole, peerName: this.peerName });
    if (this.isEnded) {
      if (this.endGuessed && !guessed) {
        this.endGuessed = false;
        this.ui.endedEl.replaceChildren(...text());
      }
      return;
    }
    this.isEnded = true;
    this.endGuessed = guessed;
    this.hideTyping();
    this.ui.endedEl.replaceChildren(...text());
    show(this.ui.endedEl, true);
    show(this.ui.form, false);
    show(this.ui.actions, false);
    this.root.classList.add('is-ended');
    if (this.onEnded) this.onEnded();
  }
}
