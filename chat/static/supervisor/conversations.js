// Supervisor page, the conversation list: GET /api/conversations?state=&risk=&limit=&before=
// (who is talking with whom, since when, at what risk; never a message or a member id).
// "Read…" on a row puts its id into the transcript form and moves focus to the reason, so a
// supervisor finds a conversation without pasting its id. Active rows also have "Monitor"
// and "Transfer…" (the transfer dialog, ui/transfer-dialog.js). A transfer under way is
// said beside the specialist ("transferring to Ben (warm)", "back in the queue (cold)"):
// from the row's `transfer`, and the list reloads on every `transfer_status`.

import { formatDateTime } from '../ui/format.js';
import { $, bidi, clear, h, show } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

const PAGE = 50;

/**
 * @param {(path: string, options?: import('../client/http.js').ApiOptions) => Promise<any>} call
 * @param {(conversationId: string) => void} read opens the transcript form for that id
 * @param {(conversationId: string) => void} [watch] opens the monitor form for a live one
 * @param {(conversationId: string, member: string, specialist: string) => void} [transfer]
 *   opens the transfer dialog for a live one (PRODUCT.md §9: a supervisor may transfer any)
 */
export function conversationsPanel(call, read, watch, transfer) {
  const body = $('#conversations');
  const more = $('#conversations-more');
  const error = $('#conversations-error');
  /** @type {string | null} */
  let oldest = null;
  // Loads may answer out of order (a reload's first load, then one for a transfer_status
  // right after): only the newest one's answer is shown, never an older, staler list.
  let generation = 0;

  /**
   * A transfer under way (PRODUCT.md §9), beside who holds the conversation.
   * @param {{state?: string, to?: {name?: string}} | null | undefined} under
   */
  function handing(under) {
    if (!under) return null;
    const text = under.state === 'offered'
      ? t('sup.transferring_to', { name: (under.to && under.to.name) || '?' })
      : t('sup.back_in_queue');
    return h('div', { class: 'hint', testid: 'conversation-transfer-state', dataset: { transfer: under.state || '' } }, bidi(text));
  }

  /** @param {any} c */
  function row(c) {
    const button = h('button', { type: 'button', testid: 'conversation-read', dataset: { conversationId: c.id } }, t('sup.read_button'));
    const who = (c.member && c.member.alias) || '?';
    button.setAttribute('aria-label', t('sup.read_label', { member: who, specialist: (c.specialist && c.specialist.name) || '?' }));
    button.addEventListener('click', () => read(c.id));
    const monitor = watch && c.state === 'active' ? h('button', { type: 'button', class: 'secondary', testid: 'conversation-monitor' }, t('mon.monitor')) : null;
    if (monitor && watch) {
      monitor.setAttribute('aria-label', t('mon.monitor_conversation', { member: who, specialist: (c.specialist && c.specialist.name) || '?' }));
      monitor.addEventListener('click', () => watch(c.id));
    }
    const handOn = transfer && c.state === 'active' ? h('button', { type: 'button', class: 'secondary', testid: 'conversation-transfer' }, t('sup.transfer')) : null;
    if (handOn && transfer) {
      const spec = (c.specialist && c.specialist.name) || '?';
      handOn.setAttribute('aria-label', t('sup.transfer_label', { member: who, specialist: spec }));
      handOn.addEventListener('click', () => transfer(c.id, who, spec));
    }
    const risk = [c.risk ? t('sup.risk_level', { level: c.risk }) : '', ...(c.flags || []), c.priority === 'urgent' ? t('sup.alert.urgent_request') : '']
      .filter(Boolean)
      .join(', ');
    return h(
      'tr',
      { testid: 'conversation-row', dataset: { conversationId: c.id, state: c.state, risk: c.risk || '' } },
      h('td', {}, h('time', { datetime: c.started_at || '' }, formatDateTime(c.started_at)), c.state === 'ended' ? ` (${t('sup.ended')})` : ''),
      h('td', {}, bidi(who)),
      h('td', {}, c.specialist && c.specialist.name ? bidi(c.specialist.name) : '–', handing(c.transfer)),
      h('td', {}, (c.tags || []).join(', ') || '–'),
      h('td', { class: c.risk ? 'risk-high' : '' }, risk || '–'),
      h('td', { class: 'actions' }, button, monitor ? [' ', monitor] : null, handOn ? [' ', handOn] : null),
    );
  }

  /** @param {boolean} older */
  async function load(older = false) {
    const q = new URLSearchParams({ limit: String(PAGE) });
    const state = /** @type {HTMLSelectElement} */ ($('#conversations-state')).value;
    if (state) q.set('state', state);
    if (/** @type {HTMLInputElement} */ ($('#conversations-risk')).checked) q.set('risk', 'high');
    if (older && oldest) q.set('before', oldest);
    const mine = older ? generation : ++generation;
    try {
      const data = await call(`/api/conversations?${q}`);
      if (mine !== generation) return; // a newer load is on its way: its answer is current
      const found = data && Array.isArray(data.conversations) ? data.conversations : [];
      error.textContent = '';
      if (!older) clear(body);
      body.append(...found.map(row));
      if (found.length) oldest = found[found.length - 1].id;
      show(more, found.length === PAGE);
      show($('#conversations-empty'), body.children.length === 0);
    } catch (err) {
      if (mine !== generation) return;
      error.textContent = t('sup.conversations_load_failed', { error: /** @type {Error} */ (err).message });
    }
  }

  $('#conversations-filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    load();
  });
  $('#conversations-refresh').addEventListener('click', () => load());
  more.addEventListener('click', () => load(true));
  return { load: () => load() };
}
