// peerchat protocol client (PRODUCT.md §5) and the small helpers every page shares.
//
// PeerChatClient owns one WebSocket to /ws. It sends `hello` first, reconnects with
// exponential back-off and jitter, resumes each conversation from the last seq this page
// has shown, hands the page every `message` exactly once and in seq order (a gap is filled
// with a `history` query, never skipped), and re-sends any `send` the server has not
// acknowledged (the server dedupes by client_msg_id, so a re-send never doubles a message).

const TOKEN_KEY = 'peerchat.token.';
const ROLES = ['member', 'specialist', 'supervisor'];

// ------------------------------------------------------------------ tokens

// The token lives in sessionStorage only: never in a URL, a cookie or localStorage, so it
// dies with the tab and is not sent anywhere we do not send it ourselves.
export function getToken(role) {
  try {
    return sessionStorage.getItem(TOKEN_KEY + role);
  } catch {
    return null;
  }
}

export function setToken(role, token) {
  sessionStorage.setItem(TOKEN_KEY + role, token);
}

export function clearToken(role) {
  try {
    sessionStorage.removeItem(TOKEN_KEY + role);
  } catch {
    /* storage disabled: nothing to clear */
  }
}

// What the dev login page signed in with, so an expiring token can be renewed without
// asking again (PEERCHAT_DEV only; with an organisation's portal there is none).
const LOGIN_KEY = 'peerchat.login.';

export function rememberLogin(role, name, sub) {
  sessionStorage.setItem(LOGIN_KEY + role, JSON.stringify({ name, sub }));
}

// A fresh token for the same person from the dev login, or null where there is none.
export async function renewToken(role) {
  let login = null;
  try {
    login = JSON.parse(sessionStorage.getItem(LOGIN_KEY + role) || 'null');
  } catch {
    login = null;
  }
  if (!login || typeof login.sub !== 'string') return null;
  try {
    const data = await api(null, '/dev/token', { method: 'POST', body: { role, name: login.name || '', sub: login.sub } });
    if (!data || typeof data.token !== 'string') return null;
    setToken(role, data.token);
    return data.token;
  } catch {
    return null;
  }
}

// The token's `exp` in milliseconds, or null if it cannot be read (we only read it to time
// `reauth`; the server is the judge).
export function tokenExpiry(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(payload)).exp;
    return typeof exp === 'number' ? exp * 1000 : null;
  } catch {
    return null;
  }
}

export function loginUrl(role, why) {
  const params = new URLSearchParams();
  if (ROLES.includes(role)) params.set('role', role);
  if (why) params.set('why', why);
  return '/login?' + params.toString();
}

// Returns the token, or sends the browser to the login page and returns null.
export function requireToken(role) {
  const token = getToken(role);
  if (!token) {
    location.replace(loginUrl(role));
    return null;
  }
  return token;
}

// crypto.randomUUID exists only in secure contexts (https, localhost); a dev server on a
// LAN address over plain http still needs unique client_msg_ids.
export function uuid() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ------------------------------------------------------------------ HTTP

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// JSON over HTTP with the bearer token in a header (never in the query string).
export async function api(token, path, { method = 'GET', body, headers: extra = {} } = {}) {
  const headers = { ...extra, Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'The server could not be reached.');
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const message = data && typeof data.error === 'string' ? data.error : `HTTP ${res.status}`;
    throw new ApiError(res.status, message);
  }
  return data;
}

// ------------------------------------------------------------------ WebSocket client

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30000;
const WELCOME_TIMEOUT_MS = 15000;
const TYPING_EVERY_MS = 3000;
const READ_COALESCE_MS = 300;
const HISTORY_PAGE = 500;
const RETRYABLE = new Set(['rate_limited', 'unavailable', 'internal']);
// Close codes after which reconnecting unchanged cannot help (protocol/codes.py).
const CLOSE_BAD_TOKEN = 4001;
const CLOSE_FORBIDDEN = 4003;
const CLOSE_RESTARTING = 1012;

export function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

class ConversationLine {
  constructor(last) {
    this.last = last; // highest seq handed to the page; null = not known yet (fill from 0)
    this.buffer = new Map(); // seq -> message frame that arrived ahead of a gap
    this.filling = false; // a `history` query is in flight
    this.readSent = 0;
    this.readTimer = null;
    this.typingAt = 0;
  }
}

/**
 * Events (subscribe with on(type, fn); '*' receives every server frame):
 *   status       {state: 'connecting'|'connected'|'reconnecting'|'closed', code?}
 *   welcome      the welcome frame, before any resumed message
 *   message      each message frame once, in seq order per conversation
 *   ack          {conversation_id, client_msg_id, seq}
 *   send_failed  {conversation_id, client_msg_id, code, message}
 *   error        the error frame plus `request`: the client frame that carried its ref
 *   auth_failed  the token was refused or expired (close 4001) and no fresh one could be
 *                had: the page must get a new token ({code, welcomed}: whether this
 *                client had been signed in before, i.e. the sign-in ended)
 *   forbidden    close 4003 (origin refused or wrong role)
 *   gap          {conversation_id, from, to}: the server could not fill a gap
 *   <type>       every other server frame by its type (queued, offer, queue_stats, ...)
 */
export class PeerChatClient {
  constructor(token, { url = socketUrl() } = {}) {
    this.token = token;
    this.url = url;
    this.ws = null;
    this.ready = false; // welcomed on the current socket
    this.stopped = false;
    this.attempt = 0;
    this.timer = null;
    this.welcomeTimer = null;
    this.listeners = new Map();
    this.lines = new Map(); // conversation_id -> ConversationLine
    this.pending = new Map(); // client_msg_id -> send frame, in send order
    this.refs = new Map(); // ref -> client frame, for matching replies and errors
    this.refCounter = 0;
    this.subscriptions = []; // frames re-sent after every welcome (queue_watch, watch_queues)
    this.user = null;
    this.reauthTimer = null;
    this.renewing = false; // a 4001 after welcome: one try with a fresh token
    window.addEventListener('online', () => this.reconnectNow());
    window.addEventListener('offline', () => this.ws && this.ws.close());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && !this.ws && navigator.onLine !== false) this.reconnectNow();
    });
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
    return this;
  }

  emit(type, payload) {
    for (const fn of this.listeners.get(type) || []) {
      try {
        fn(payload);
      } catch (err) {
        console.error(`peerchat: a ${type} handler failed`, err);
      }
    }
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
    clearTimeout(this.timer);
    clearTimeout(this.reauthTimer);
    if (this.ws) this.ws.close(1000);
  }

  open() {
    clearTimeout(this.timer);
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
      const resume = {};
      for (const [id, line] of this.lines) if (line.last !== null) resume[id] = line.last;
      const hello = { type: 'hello', token: this.token };
      if (Object.keys(resume).length) hello.resume = resume;
      ws.send(JSON.stringify(hello));
      this.welcomeTimer = setTimeout(() => ws.close(4000), WELCOME_TIMEOUT_MS);
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

  closed(ws, code) {
    if (this.ws !== ws) return;
    clearTimeout(this.welcomeTimer);
    this.ws = null;
    this.ready = false;
    // Replies to frames on the dead socket will never come.
    this.refs.clear();
    for (const line of this.lines.values()) line.filling = false;
    if (code === CLOSE_BAD_TOKEN) {
      clearTimeout(this.reauthTimer);
      if (this.user && !this.renewing && !this.stopped) {
        // The token expired (or was revoked) while signed in: try once with a fresh one.
        this.renewing = true;
        this.emit('status', { state: 'reconnecting', code });
        renewToken(this.user.role).then((token) => {
          if (this.stopped) return;
          if (token) {
            this.token = token;
            this.open();
          } else {
            this.authFailed(code);
          }
        });
        return;
      }
      this.authFailed(code);
      return;
    }
    if (code === CLOSE_FORBIDDEN) {
      this.stopped = true;
      this.emit('status', { state: 'closed', code });
      this.emit('forbidden', { code });
      return;
    }
    if (this.stopped) {
      this.emit('status', { state: 'closed', code });
      return;
    }
    this.emit('status', { state: 'reconnecting', code });
    this.scheduleReconnect(code);
  }

  authFailed(code) {
    this.stopped = true;
    this.emit('status', { state: 'closed', code });
    this.emit('auth_failed', { code, welcomed: Boolean(this.user) });
  }

  scheduleReconnect(code) {
    if (this.timer || this.stopped) return;
    let delay;
    if (navigator.onLine === false) {
      // No network: every try would fail (and log an error). The `online` event reconnects
      // at once; the slow retry only covers a browser whose onLine flag is wrong.
      delay = BACKOFF_CAP_MS;
    } else if (code === CLOSE_RESTARTING) {
      delay = Math.random() * 1000; // restart: go at once, spread over a second
    } else {
      // Exponential back-off with "equal jitter": half fixed, half random.
      const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
      delay = ceiling / 2 + Math.random() * (ceiling / 2);
    }
    this.attempt += 1;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.open();
    }, delay);
  }

  reconnectNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.open();
  }

  // Sends a client frame now if welcomed; returns its ref, or null if it could not go.
  send(frame) {
    if (!this.ready || !this.ws || this.ws.readyState !== WebSocket.OPEN) return null;
    const ref = frame.ref || 'r' + ++this.refCounter;
    const out = { ...frame, ref };
    this.refs.set(ref, out);
    if (this.refs.size > 500) this.refs.delete(this.refs.keys().next().value);
    this.ws.send(JSON.stringify(out));
    return ref;
  }

  // Re-sent after every welcome: queue_watch / watch_queues survive reconnects.
  subscribe(frame) {
    this.subscriptions.push(frame);
    this.send(frame);
  }

  // ------------------------------------------------------------ conversations

  line(conversationId) {
    let line = this.lines.get(conversationId);
    if (!line) {
      line = new ConversationLine(null);
      this.lines.set(conversationId, line);
    }
    return line;
  }

  lastSeq(conversationId) {
    const line = this.lines.get(conversationId);
    return line && line.last !== null ? line.last : 0;
  }

  // Start following a conversation. `last` = the seq already shown (0 for a new one);
  // leave it out to have the whole stored conversation fetched.
  follow(conversationId, last = null) {
    const line = this.line(conversationId);
    if (line.last === null && last !== null) line.last = last;
    if (line.last === null) this.fill(conversationId);
  }

  forget(conversationId) {
    this.lines.delete(conversationId);
  }

  sendMessage(conversationId, body) {
    const clientMsgId = uuid();
    const frame = { type: 'send', conversation_id: conversationId, client_msg_id: clientMsgId, body, ref: clientMsgId };
    this.pending.set(clientMsgId, frame);
    this.send(frame); // if offline it goes out after the next welcome
    return clientMsgId;
  }

  pendingFor(conversationId) {
    return [...this.pending.values()].filter((f) => f.conversation_id === conversationId);
  }

  typing(conversationId) {
    const line = this.line(conversationId);
    const now = Date.now();
    if (now - line.typingAt < TYPING_EVERY_MS) return;
    if (this.send({ type: 'typing', conversation_id: conversationId })) line.typingAt = now;
  }

  // Tell the peer we have read up to the last seq shown (only ever forwards). Coalesced:
  // a history page of 500 messages must not become 500 `read` frames (the server's flood
  // guard closes a socket that sends too many).
  markRead(conversationId) {
    const line = this.lines.get(conversationId);
    if (!line || !line.last || line.last <= line.readSent || line.readTimer) return;
    line.readTimer = setTimeout(() => {
      line.readTimer = null;
      if (!line.last || line.last <= line.readSent) return;
      if (this.send({ type: 'read', conversation_id: conversationId, seq: line.last })) line.readSent = line.last;
    }, READ_COALESCE_MS);
  }

  fill(conversationId) {
    const line = this.line(conversationId);
    if (line.filling) return;
    const ref = this.send({
      type: 'history',
      conversation_id: conversationId,
      after_seq: line.last || 0,
      limit: HISTORY_PAGE,
    });
    if (ref) line.filling = true;
  }

  accept(message) {
    const id = message.conversation_id;
    const seq = message.seq;
    if (typeof id !== 'string' || !Number.isInteger(seq)) return;
    const line = this.line(id);
    if (line.last === null) {
      // We do not know where this conversation starts for us yet: hold it and fetch.
      line.buffer.set(seq, message);
      this.fill(id);
      return;
    }
    if (seq <= line.last || line.buffer.has(seq)) return; // a duplicate
    if (seq > line.last + 1) {
      line.buffer.set(seq, message);
      this.fill(id);
      return;
    }
    this.deliver(line, message);
    while (line.buffer.has(line.last + 1)) {
      const next = line.buffer.get(line.last + 1);
      line.buffer.delete(line.last + 1);
      this.deliver(line, next);
    }
    for (const s of line.buffer.keys()) if (s <= line.last) line.buffer.delete(s);
  }

  deliver(line, message) {
    line.last = message.seq;
    if (message.client_msg_id && this.pending.has(message.client_msg_id)) {
      // Our own message came back: it is stored, even if its ack was lost with a socket.
      const mine = this.pending.get(message.client_msg_id);
      if (mine.conversation_id === message.conversation_id) this.pending.delete(message.client_msg_id);
    }
    this.emit('message', message);
  }

  onHistory(frame) {
    const id = frame.conversation_id;
    const line = this.line(id);
    line.filling = false;
    const messages = Array.isArray(frame.messages) ? frame.messages : [];
    if (line.last === null) line.last = 0;
    const before = line.last;
    for (const m of messages) this.accept(m);
    if (line.buffer.size === 0) return;
    if (messages.length === HISTORY_PAGE || line.last > before) {
      this.fill(id);
      return;
    }
    // The server had nothing to fill the gap with: report it and move on rather than stall.
    const from = line.last + 1;
    const next = Math.min(...line.buffer.keys());
    this.emit('gap', { conversation_id: id, from, to: next - 1 });
    line.last = next - 1;
    this.accept(line.buffer.get(next));
  }

  // ------------------------------------------------------------ incoming

  receive(frame) {
    const request = frame.ref ? this.refs.get(frame.ref) : undefined;
    if (frame.ref) this.refs.delete(frame.ref);
    switch (frame.type) {
      case 'welcome':
        this.onWelcome(frame);
        return;
      case 'message':
        this.accept(frame);
        return;
      case 'history':
        this.onHistory(frame);
        return;
      case 'reauthed':
        if (request && typeof request.token === 'string') this.token = request.token;
        this.scheduleReauth();
        break;
      case 'ack':
        this.pending.delete(frame.client_msg_id);
        this.emit('ack', frame);
        return;
      case 'conversation_started':
        if (frame.conversation && frame.conversation.id) this.follow(frame.conversation.id, 0);
        break;
      case 'error':
        this.onError(frame, request);
        return;
      default:
        break;
    }
    this.emit(frame.type, frame);
    this.emit('*', frame);
  }

  onError(frame, request) {
    if (request && request.type === 'send') {
      const cmid = request.client_msg_id;
      if (RETRYABLE.has(frame.code)) {
        setTimeout(() => {
          if (this.pending.has(cmid)) this.send(this.pending.get(cmid));
        }, 2000 + Math.random() * 2000);
        return;
      }
      this.pending.delete(cmid);
      this.emit('send_failed', {
        conversation_id: request.conversation_id,
        client_msg_id: cmid,
        code: frame.code,
        message: frame.message,
      });
      return;
    }
    if (request && request.type === 'history') this.line(request.conversation_id).filling = false;
    this.emit('error', { ...frame, request });
  }

  // A socket lives no longer than its token: a minute before `exp` (or a fifth of a short
  // token's life) get a fresh token and send `reauth`. Without a way to get one the
  // server closes at `exp` with 4001, and the page shows that the sign-in ended.
  scheduleReauth() {
    clearTimeout(this.reauthTimer);
    const exp = tokenExpiry(this.token);
    if (exp === null || !this.user) return;
    const left = exp - Date.now();
    const lead = Math.min(60000, left / 5);
    this.reauthTimer = setTimeout(async () => {
      const token = await renewToken(this.user.role);
      if (token && this.ready) this.send({ type: 'reauth', token });
    }, Math.max(1000, left - lead));
  }

  onWelcome(frame) {
    clearTimeout(this.welcomeTimer);
    this.ready = true;
    this.attempt = 0;
    this.renewing = false;
    this.user = frame.user || null;
    this.scheduleReauth();
    this.emit('status', { state: 'connected' });
    this.emit('welcome', frame);
    // Conversations we did not resume (new to this page) are fetched whole; a line still
    // holding messages ahead of a gap is filled.
    for (const c of frame.conversations || []) this.line(c.id);
    for (const [id, line] of this.lines) if (line.last === null || line.buffer.size) this.fill(id);
    for (const sub of this.subscriptions) this.send(sub);
    for (const frameOut of this.pending.values()) this.send(frameOut);
  }
}

// ------------------------------------------------------------------ formatting

export function formatDuration(totalSeconds) {
  const s = Math.max(0, Math.round(Number(totalSeconds) || 0));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function formatWait(totalSeconds) {
  const s = Math.max(0, Math.round(Number(totalSeconds) || 0));
  if (s < 60) return 'less than a minute';
  const m = Math.round(s / 60);
  if (m < 60) return m === 1 ? 'about 1 minute' : `about ${m} minutes`;
  const hours = Math.floor(m / 60);
  return `about ${hours} h ${m % 60} min`;
}

export function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function formatDateTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso || '');
  return d.toLocaleString([], { dateStyle: 'short', timeStyle: 'medium' });
}
