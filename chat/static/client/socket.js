// The socket half of the protocol client (PRODUCT.md §5): one WebSocket to /ws, `hello`
// first, reconnects with exponential back-off and jitter, client frames tagged with a `ref`
// so replies and errors find the frame that caused them, and subscriptions re-sent after
// every `welcome`. What a conversation needs on top (ordering, resume, pending sends) is in
// conversations.js.

import { CloseCode } from '../codes.js';
import { reconnectDelay } from './backoff.js';
import { Emitter } from './emitter.js';
import { Reauth } from './reauth.js';

const WELCOME_TIMEOUT_MS = 15000;
const MAX_REFS = 500;
// Our own close code for a socket that never got its `welcome` (never sent by the server).
const CLOSE_NO_WELCOME = 4000;

/** @typedef {import('./events.js').Frame} Frame */
/** @typedef {import('./events.js').ClientEvents} ClientEvents */

export function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

/**
 * Events: status {state: 'connecting'|'connected'|'reconnecting'|'closed', code?},
 * auth_failed (close 4001: the page needs a new token), forbidden (close 4003); the frames
 * themselves are handed to handle(), which subclasses extend.
 */
/** @extends {Emitter<ClientEvents>} */
export class SocketClient extends Emitter {
  /**
   * @param {string} token
   * @param {{url?: string}} [options]
   */
  constructor(token, { url = socketUrl() } = {}) {
    super();
    this.token = token;
    this.url = url;
    /** @type {WebSocket | null} */
    this.ws = null;
    this.ready = false; // welcomed on the current socket
    this.stopped = false;
    this.attempt = 0;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.timer = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.welcomeTimer = undefined;
    /** @type {Map<string, Frame>} ref -> client frame, for matching replies and errors */
    this.refs = new Map();
    this.refCounter = 0;
    /** @type {Frame[]} frames re-sent after every welcome (queue_watch, watch_queues) */
    this.subscriptions = [];
    /** @type {{id?: string, name?: string, role?: string} | null} */
    this.user = null;
    this.reauth = new Reauth(this);
    window.addEventListener('online', () => this.reconnectNow());
    window.addEventListener('offline', () => this.ws && this.ws.close());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && !this.ws && navigator.onLine !== false) this.reconnectNow();
    });
  }

  get connected() {
    return this.ready;
  }

  connect() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.reauth.cancel();
    if (this.ws) this.ws.close(CloseCode.NORMAL);
  }

  /** Extra fields for `hello` (the resume map); subclasses override. */
  helloFields() {
    return {};
  }

  open() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) return;
    this.emit('status', { state: this.attempt === 0 && !this.user ? 'connecting' : 'reconnecting' });
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleReconnect(0);
      return;
    }
    this.ws = ws;
    ws.addEventListener('open', () => {
      ws.send(JSON.stringify({ type: 'hello', token: this.token, ...this.helloFields() }));
      this.welcomeTimer = setTimeout(() => ws.close(CLOSE_NO_WELCOME), WELCOME_TIMEOUT_MS);
    });
    ws.addEventListener('message', (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (frame && typeof frame.type === 'string') this.receive(frame);
    });
    ws.addEventListener('close', (ev) => this.closed(ws, ev.code));
  }

  /**
   * @param {WebSocket} ws
   * @param {number} code
   */
  closed(ws, code) {
    if (this.ws !== ws) return;
    clearTimeout(this.welcomeTimer);
    this.ws = null;
    this.ready = false;
    // Replies to frames on the dead socket will never come.
    this.refs.clear();
    this.socketLost();
    // The token expired (or was revoked) while signed in: Reauth tries once with a fresh one.
    if (code === CloseCode.BAD_TOKEN && this.reauth.retry(code)) return;
    if (code === CloseCode.BAD_TOKEN || code === CloseCode.FORBIDDEN) return void this.refused(code);
    if (this.stopped) {
      this.emit('status', { state: 'closed', code });
      return;
    }
    this.emit('status', { state: 'reconnecting', code });
    this.scheduleReconnect(code);
  }

  /**
   * 4001 (no fresh token to be had) or 4003: reconnecting unchanged cannot help.
   * auth_failed carries `welcomed`: whether this client had been signed in, i.e. the sign-in ended.
   * @param {number} code
   */
  refused(code) {
    this.stopped = true;
    this.emit('status', { state: 'closed', code });
    if (code === CloseCode.BAD_TOKEN) this.emit('auth_failed', { code, welcomed: Boolean(this.user) });
    else this.emit('forbidden', { code });
  }

  /** Called when a socket is gone, before any reconnect; subclasses override. */
  socketLost() {}

  /** @param {number} code */
  scheduleReconnect(code) {
    if (this.timer || this.stopped) return;
    const delay = reconnectDelay({ attempt: this.attempt, code, online: navigator.onLine !== false });
    this.attempt += 1;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.open();
    }, delay);
  }

  reconnectNow() {
    if (this.stopped || this.ws) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.open();
  }

  /**
   * Sends a client frame now if welcomed.
   * @param {Frame} frame
   * @returns {string | null} its ref, or null if it could not go
   */
  send(frame) {
    if (!this.ready || !this.ws || this.ws.readyState !== WebSocket.OPEN) return null;
    const ref = frame.ref || 'r' + ++this.refCounter;
    const out = { ...frame, ref };
    this.refs.set(ref, out);
    if (this.refs.size > MAX_REFS) this.refs.delete(/** @type {string} */ (this.refs.keys().next().value));
    this.ws.send(JSON.stringify(out));
    return ref;
  }

  /**
   * Sent now and re-sent after every welcome: queue_watch / watch_queues survive reconnects.
   * @param {Frame} frame
   */
  subscribe(frame) {
    this.subscriptions.push(frame);
    this.send(frame);
  }

  /**
   * A frame from the server, as parsed: the server's frames obey docs/protocol.schema.json,
   * so from here on each is typed by its `type` (ClientEvents).
   * @param {any} frame
   */
  receive(frame) {
    const request = frame.ref ? this.refs.get(frame.ref) : undefined;
    if (frame.ref) this.refs.delete(frame.ref);
    if (frame.type === 'welcome') {
      clearTimeout(this.welcomeTimer);
      this.ready = true;
      this.attempt = 0;
      this.user = frame.user || null;
      this.reauth.welcomed();
      this.emit('status', { state: 'connected' });
    }
    this.handle(frame, request);
  }

  /**
   * One server frame; the base class hands every frame to its listeners by type (and '*').
   * @param {any} frame a server frame
   * @param {Frame | undefined} request the client frame whose ref it carries
   */
  handle(frame, request) {
    if (frame.type === 'error') {
      this.emit('error', { ...frame, request });
      return;
    }
    if (frame.type === 'reauthed') {
      if (request && typeof request.token === 'string') this.token = request.token;
      this.reauth.schedule();
    }
    if (frame.type === 'welcome') {
      this.emit('welcome', frame);
      this.afterWelcome(frame);
      return;
    }
    this.emit(frame.type, frame);
    this.emit('*', frame);
  }

  /**
   * What follows every `welcome` once the page has seen it: subscriptions again.
   * @param {Frame} _welcome
   */
  afterWelcome(_welcome) {
    for (const sub of this.subscriptions) this.send(sub);
  }
}
