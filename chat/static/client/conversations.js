// The protocol client the pages use: the socket (socket.js) plus what conversations need.
//
// It resumes each conversation from the last seq this page has shown, hands the page every
// `message` exactly once and in seq order (a gap is filled with a `history` query, never
// skipped), and re-sends any `send` the server has not acknowledged (the server dedupes by
// client_msg_id, so a re-send never doubles a message).

import { RETRYABLE_ERRORS } from '../codes.js';
import { uuid } from './ids.js';
import { ConversationLine } from './line.js';
import { SocketClient } from './socket.js';

const TYPING_EVERY_MS = 3000;
const READ_COALESCE_MS = 300;
const HISTORY_PAGE = 500;

/** @typedef {import('./socket.js').Frame} Frame */
/** @typedef {import('./line.js').Message} Message */

/** @param {unknown} code */
const retryable = (code) => /** @type {readonly unknown[]} */ (RETRYABLE_ERRORS).includes(code);

/**
 * Events (subscribe with on(type, fn); '*' receives every other server frame), besides the
 * socket's status / auth_failed / forbidden:
 *   welcome      the welcome frame, before any resumed message
 *   message      each message frame once, in seq order per conversation
 *   ack          {conversation_id, client_msg_id, seq}
 *   send_failed  {conversation_id, client_msg_id, code, message}
 *   error        the error frame plus `request`: the client frame that carried its ref
 *   gap          {conversation_id, from, to}: the server could not fill a gap
 *   <type>       every other server frame by its type (queued, offer, queue_stats, ...)
 */
export class PeerChatClient extends SocketClient {
  /**
   * @param {string} token
   * @param {{url?: string}} [options]
   */
  constructor(token, options) {
    super(token, options);
    /** @type {Map<string, ConversationLine>} */
    this.lines = new Map();
    /** @type {Map<string, Frame>} client_msg_id -> send frame, in send order */
    this.pending = new Map();
  }

  helloFields() {
    /** @type {Record<string, number>} */
    const resume = {};
    for (const [id, line] of this.lines) if (line.last !== null) resume[id] = line.last;
    return Object.keys(resume).length ? { resume } : {};
  }

  socketLost() {
    for (const line of this.lines.values()) line.filling = false;
  }

  /** @param {string} conversationId */
  line(conversationId) {
    let line = this.lines.get(conversationId);
    if (!line) {
      line = new ConversationLine(null);
      this.lines.set(conversationId, line);
    }
    return line;
  }

  /** @param {string} conversationId */
  lastSeq(conversationId) {
    const line = this.lines.get(conversationId);
    return line && line.last !== null ? line.last : 0;
  }

  /**
   * Start following a conversation. `last` = the seq already shown (0 for a new one);
   * leave it out to have the whole stored conversation fetched.
   * @param {string} conversationId
   * @param {number | null} [last]
   */
  follow(conversationId, last = null) {
    const line = this.line(conversationId);
    if (line.last === null && last !== null) line.last = last;
    if (line.last === null) this.fill(conversationId);
  }

  /** @param {string} conversationId */
  forget(conversationId) {
    this.lines.delete(conversationId);
  }

  /**
   * @param {string} conversationId
   * @param {string} body
   * @returns {string} the client_msg_id
   */
  sendMessage(conversationId, body) {
    const clientMsgId = uuid();
    const frame = { type: 'send', conversation_id: conversationId, client_msg_id: clientMsgId, body, ref: clientMsgId };
    this.pending.set(clientMsgId, frame);
    this.send(frame); // if offline it goes out after the next welcome
    return clientMsgId;
  }

  /** @param {string} conversationId */
  pendingFor(conversationId) {
    return [...this.pending.values()].filter((f) => f.conversation_id === conversationId);
  }

  /** @param {string} conversationId */
  typing(conversationId) {
    const line = this.line(conversationId);
    const now = Date.now();
    if (now - line.typingAt < TYPING_EVERY_MS) return;
    if (this.send({ type: 'typing', conversation_id: conversationId })) line.typingAt = now;
  }

  /**
   * Tell the peer we have read up to the last seq shown (only ever forwards). Coalesced:
   * a history page of 500 messages must not become 500 `read` frames (the server's flood
   * guard closes a socket that sends too many).
   * @param {string} conversationId
   */
  markRead(conversationId) {
    const line = this.lines.get(conversationId);
    if (!line || !line.last || line.last <= line.readSent || line.readTimer) return;
    line.readTimer = setTimeout(() => {
      line.readTimer = null;
      if (!line.last || line.last <= line.readSent) return;
      if (this.send({ type: 'read', conversation_id: conversationId, seq: line.last })) line.readSent = line.last;
    }, READ_COALESCE_MS);
  }

  /** @param {string} conversationId */
  fill(conversationId) {
    const line = this.line(conversationId);
    if (line.filling) return;
    const ref = this.send({ type: 'history', conversation_id: conversationId, after_seq: line.last || 0, limit: HISTORY_PAGE });
    if (ref) line.filling = true;
  }

  /** @param {Message} message */
  accept(message) {
    const id = message.conversation_id;
    if (typeof id !== 'string' || !Number.isInteger(message.seq)) return;
    const line = this.line(id);
    const { ready, fill } = line.take(message);
    for (const m of ready) this.deliver(line, m);
    if (fill) this.fill(id);
  }

  /**
   * @param {ConversationLine} line
   * @param {Message} message
   */
  deliver(line, message) {
    line.last = message.seq;
    const mine = message.client_msg_id ? this.pending.get(message.client_msg_id) : undefined;
    // Our own message came back: it is stored, even if its ack was lost with a socket.
    if (mine && message.client_msg_id && mine.conversation_id === message.conversation_id) this.pending.delete(message.client_msg_id);
    this.emit('message', message);
  }

  /** @param {import('peerchat-protocol').History} frame */
  onHistory(frame) {
    const id = frame.conversation_id;
    const line = this.line(id);
    line.filling = false;
    const messages = Array.isArray(frame.messages) ? frame.messages : [];
    if (line.last === null) line.last = 0;
    const before = line.last;
    for (const m of messages) this.accept(m);
    const after = line.afterHistory(messages.length === HISTORY_PAGE, before);
    if (after === 'done') return;
    if (after === 'more') return void this.fill(id);
    // The server had nothing to fill the gap with: report it and move on rather than stall.
    this.emit('gap', { conversation_id: id, from: after.from, to: after.to });
    this.accept(after.next);
  }

  /**
   * @param {any} frame a server frame
   * @param {Frame | undefined} request
   */
  handle(frame, request) {
    switch (frame.type) {
      case 'message':
        this.accept(/** @type {Message} */ (/** @type {unknown} */ (frame)));
        return;
      case 'history':
        this.onHistory(frame);
        return;
      case 'ack':
        this.pending.delete(frame.client_msg_id);
        this.emit('ack', frame);
        return;
      case 'conversation_started':
        // A conversation handed on to us already has messages: fetch it whole (PRODUCT.md §9).
        if (frame.conversation && frame.conversation.id) this.follow(frame.conversation.id, frame.transfer ? null : 0);
        break;
      case 'error':
        if (this.sendError(frame, request)) return;
        if (request && request.type === 'history') this.line(request.conversation_id).filling = false;
        break;
      default:
        break;
    }
    super.handle(frame, request);
  }

  /**
   * A refused `send`: retried later if the code says so, otherwise reported as send_failed.
   * @param {Frame} frame
   * @param {Frame | undefined} request
   * @returns {boolean} whether it was an error for a `send`
   */
  sendError(frame, request) {
    if (!request || request.type !== 'send') return false;
    const cmid = request.client_msg_id;
    if (retryable(frame.code)) {
      setTimeout(() => {
        const again = this.pending.get(cmid);
        if (again) this.send(again);
      }, 2000 + Math.random() * 2000);
      return true;
    }
    this.pending.delete(cmid);
    this.emit('send_failed', { conversation_id: request.conversation_id, client_msg_id: cmid, code: frame.code, message: frame.message });
    return true;
  }

  /** @param {Frame} welcome */
  afterWelcome(welcome) {
    // Conversations we did not resume (new to this page) are fetched whole; a line still
    // holding messages ahead of a gap is filled.
    for (const c of welcome.conversations || []) this.line(c.id);
    for (const [id, line] of this.lines) if (line.last === null || line.buffer.size) this.fill(id);
    super.afterWelcome(welcome);
    for (const frameOut of this.pending.values()) this.send(frameOut);
  }
}
