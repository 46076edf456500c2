// Supervisor page, the audit log: GET /api/audit, newest first, filtered by action, actor
// and conversation, paged back with "Older entries" (?before=), and exported with the same
// filters as CSV (GET /api/audit.csv, fetched with the bearer header, saved as a file).

import { formatDateTime } from '../ui/format.js';
import { $, clear, h, show } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

const PAGE = 50;

/** @param {string} action e.g. read_transcript → "read transcript" (or its translation) */
function actionName(action) {
  const key = `sup.action.${action}`;
  const text = t(key);
  return text === key ? action.replace(/_/g, ' ') : text;
}

/**
 * @param {(path: string, options?: import('../client/http.js').ApiOptions) => Promise<any>} call
 * @param {(path: string) => Promise<Blob>} download GET with the bearer header, as a Blob
 */
export function auditPanel(call, download) {
  const body = $('#audit');
  const more = $('#audit-more');
  const status = $('#audit-status');
  const error = $('#audit-error');
  /** @type {string | null} the oldest id shown */
  let oldest = null;
  let shown = 0;
  const value = (/** @type {string} */ sel) => /** @type {HTMLInputElement} */ ($(sel)).value.trim();

  function query() {
    const q = new URLSearchParams();
    const filters = { action: value('#audit-action'), actor: value('#audit-actor'), conversation: value('#audit-conversation') };
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    return q;
  }

  /** @param {any} e */
  function row(e) {
    return h(
      'tr',
      { testid: 'audit-row', dataset: { action: e.action || '' } },
      h('td', {}, h('time', { datetime: e.at || '' }, formatDateTime(e.at))),
      h('td', { dir: 'auto' }, `${e.actor_name || ''} (${e.actor_id || ''})`),
      h('td', { testid: 'audit-action-cell' }, actionName(String(e.action || ''))),
      // What was acted on: the conversation, or else the target (a specialist's id, …).
      h('td', { class: 'mono', dir: 'auto' }, String(e.conversation_id || e.target || '')),
      h('td', { testid: 'audit-reason', dir: 'auto' }, String(e.reason || '')),
    );
  }

  /** @param {boolean} older append the page before the oldest shown, else start again */
  async function load(older = false) {
    const q = query();
    q.set('limit', String(PAGE));
    if (older && oldest) q.set('before', oldest);
    try {
      const data = await call(`/api/audit?${q}`);
      const entries = data && Array.isArray(data.entries) ? data.entries : [];
      error.textContent = '';
      if (!older) {
        clear(body);
        shown = 0;
      }
      for (const e of entries) body.append(row(e));
      shown += entries.length;
      if (entries.length) oldest = entries[entries.length - 1].id;
      show(more, entries.length === PAGE);
      status.textContent = shown ? t(shown === 1 ? 'sup.audit_shown_one' : 'sup.audit_shown', { n: shown }) : t('sup.audit_none');
    } catch (err) {
      error.textContent = t('sup.audit_load_failed', { error: /** @type {Error} */ (err).message });
    }
  }

  async function exportCsv() {
    try {
      const blob = await download(`/api/audit.csv?${query()}`);
      const url = URL.createObjectURL(blob);
      const link = h('a', { href: url, download: 'audit.csv', hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      status.textContent = t('sup.audit_exported');
    } catch (err) {
      error.textContent = t('sup.audit_export_failed', { error: /** @type {Error} */ (err).message });
    }
  }

  $('#audit-filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    load();
  });
  $('#audit-refresh').addEventListener('click', () => load());
  more.addEventListener('click', () => load(true));
  $('#audit-export').addEventListener('click', exportCsv);

  return { load: () => load() };
}
