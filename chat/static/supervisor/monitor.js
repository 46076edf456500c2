// Supervisor page, watching a live conversation (PRODUCT.md §8, docs/safety.md): "Monitor"
// from an alert or the conversation list asks for a reason (and whether it is an emergency),
// then shows the conversation read-only, history first and then live by `seq`; a whisper box
// (only the specialist sees it); "Join" with its own reason, then a send box; "Leave";
// "Stop monitoring". Every start is audited by the server before anything is sent.

import { uuid } from '../client/ids.js';
import { bidi, clear, h, show } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */

/**
 * @param {PeerChatClient} client
 * @param {(text: string) => void} notice
 * @param {HTMLElement} after the section is placed after this one
 */
export function monitorPanel(client, notice, after) {
  /** @type {string | null} the conversation this page watches */
  let watching = null;
  let joined = false;
  let lastSeq = 0;

  /** @param {string} tag @param {string} key @param {any} props */
  const field = (tag, key, props) => {
    const id = `monitor-${key}`;
    const input = h(/** @type {any} */ (tag), { id, ...props });
    return { input, label: h('label', { for: id }, t(`mon.${key}`)) };
  };
  const heading = h('h2', { id: 'monitor-heading' }, t('mon.heading'));
  const target = h('p', { class: 'hint', testid: 'monitor-target' });
  const reason = field('input', 'reason', { type: 'text', maxlength: 500, testid: 'monitor-reason' });
  const emergency = field('input', 'emergency', { type: 'checkbox', testid: 'monitor-emergency' });
  const start = h('button', { type: 'submit', class: 'primary', testid: 'monitor-start' }, t('mon.start'));
  const ask = h(
    'form',
    { testid: 'monitor-form', hidden: true },
    target,
    h('p', {}, reason.label, h('br'), reason.input),
    h('p', {}, emergency.input, ' ', emergency.label),
    h('div', { class: 'button-row' }, start),
  );
  const list = h('ol', {});
  const log = h('div', { class: 'monitor-log', role: 'log', testid: 'monitor-log', 'aria-label': t('mon.log') }, list);
  const whisper = field('input', 'whisper', { type: 'text', maxlength: 2000, testid: 'whisper-body' });
  const whisperForm = h(
    'form',
    { class: 'whisper-box', testid: 'whisper-form' },
    h('p', { class: 'whisper-hint' }, t('mon.whisper_hint')),
    h('p', {}, whisper.label, h('br'), whisper.input, ' ', h('button', { type: 'submit', testid: 'whisper-send' }, t('mon.whisper_send'))),
  );
  const joinReason = field('input', 'join_reason', { type: 'text', maxlength: 500, testid: 'join-reason' });
  const joinForm = h(
    'form',
    { testid: 'join-form' },
    h('p', {}, joinReason.label, h('br'), joinReason.input, ' ', h('button', { type: 'submit', class: 'secondary', testid: 'join-button' }, t('mon.join'))),
  );
  const say = field('input', 'say', { type: 'text', maxlength: 4000, testid: 'join-body' });
  const sayForm = h(
    'form',
    { testid: 'join-send-form', hidden: true },
    h('p', {}, say.label, h('br'), say.input, ' ', h('button', { type: 'submit', class: 'primary', testid: 'join-send' }, t('chat.send'))),
    h('button', { type: 'button', testid: 'leave-button' }, t('mon.leave')),
  );
  const stop = h('button', { type: 'button', testid: 'monitor-stop' }, t('mon.stop'));
  const live = h('div', { testid: 'monitor-live', hidden: true }, log, whisperForm, joinForm, sayForm, h('div', { class: 'button-row' }, stop));
  const section = h('section', { class: 'card span-all', testid: 'monitor-panel', 'aria-labelledby': 'monitor-heading', hidden: true }, heading, ask, live);
  after.after(section);

  /** @param {any} m */
  function add(m) {
    if (m.seq <= lastSeq) return; // history then live: no repeat
    lastSeq = m.seq;
    const who = m.sender && m.sender.role === 'member' ? t('chat.member') : (m.sender && m.sender.name) || '?';
    list.append(h('li', { testid: 'monitor-message', dataset: { seq: String(m.seq), role: (m.sender && m.sender.role) || '' } }, h('strong', {}, bidi(who), ': '), bidi(m.body || '')));
  }

  function reset() {
    watching = null;
    joined = false;
    show(live, false);
    show(sayForm, false);
    show(joinForm, true);
  }

  /** Open the form for a conversation: reason first. @param {string} conversationId */
  function open(conversationId) {
    if (watching && watching !== conversationId) client.send({ type: 'unmonitor', conversation_id: watching });
    reset();
    clear(list);
    lastSeq = 0;
    ask.dataset.conversationId = conversationId;
    target.textContent = t('mon.target', { id: conversationId });
    show(section, true);
    show(ask, true);
    /** @type {HTMLInputElement} */ (reason.input).focus();
  }

  ask.addEventListener('submit', (e) => {
    e.preventDefault();
    const why = /** @type {HTMLInputElement} */ (reason.input).value.trim();
    if (!why) return notice(t('mon.reason_needed'));
    const id = ask.dataset.conversationId || '';
    const frame = { type: 'monitor', conversation_id: id, reason: why, emergency: /** @type {HTMLInputElement} */ (emergency.input).checked };
    if (!client.send(frame)) return notice(t('common.not_connected'));
    // The reply is the history, which the client turns into `message` events in seq order
    // (then the live ones, no repeat); a refusal comes back as an `error` and reopens this.
    watching = id;
    show(ask, false);
    show(live, true);
    notice(t('mon.started'));
    /** @type {HTMLInputElement} */ (whisper.input).focus();
  });
  whisperForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const body = /** @type {HTMLInputElement} */ (whisper.input).value.trim();
    if (!body || !watching) return;
    if (client.send({ type: 'whisper', conversation_id: watching, body })) /** @type {HTMLInputElement} */ (whisper.input).value = '';
  });
  joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const why = /** @type {HTMLInputElement} */ (joinReason.input).value.trim();
    if (!why) return notice(t('mon.reason_needed'));
    if (watching) client.send({ type: 'join', conversation_id: watching, reason: why, emergency: /** @type {HTMLInputElement} */ (emergency.input).checked });
  });
  sayForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const body = /** @type {HTMLInputElement} */ (say.input).value.trim();
    if (!body || !watching || !joined) return;
    if (client.send({ type: 'send', conversation_id: watching, client_msg_id: uuid(), body })) /** @type {HTMLInputElement} */ (say.input).value = '';
  });
  sayForm.querySelector('[data-testid="leave-button"]')?.addEventListener('click', () => {
    if (watching) client.send({ type: 'leave', conversation_id: watching });
  });
  stop.addEventListener('click', () => {
    if (watching) client.send({ type: 'unmonitor', conversation_id: watching });
  });

  client.on('error', (e) => {
    const req = e.request;
    if (req && req.type === 'monitor' && req.conversation_id === watching) {
      reset();
      show(ask, true);
    }
  });
  client.on('message', (m) => {
    if (m.conversation_id === watching) add(m);
  });
  client.on('whisper', (f) => {
    if (f.conversation_id === watching && f.ref) notice(t('mon.whispered'));
  });
  client.on('participant_joined', (f) => {
    if (f.conversation_id !== watching || !f.ref) return;
    joined = true;
    show(joinForm, false);
    show(sayForm, true);
    /** @type {HTMLInputElement} */ (say.input).focus();
    notice(t('mon.joined'));
  });
  client.on('participant_left', (f) => {
    if (f.conversation_id !== watching || !f.ref) return;
    joined = false;
    show(sayForm, false);
    show(joinForm, true);
    notice(t('mon.left'));
  });
  client.on('monitoring', (f) => {
    if (f.conversation_id !== watching || f.watching) return;
    reset();
    show(section, false);
    notice(t('mon.stopped'));
  });
  client.on('conversation_ended', (f) => {
    if (f.conversation_id !== watching) return;
    reset();
    notice(t('mon.ended'));
  });
  return { open };
}
