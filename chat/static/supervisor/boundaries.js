// Supervisor page, boundaries (PRODUCT.md §9): the blocks in force (GET /api/blocks), each
// with "Lift" (DELETE /api/blocks/{id}, audited), and members' reports (GET /api/reports),
// each with "Review…" (the transcript form for that conversation, read with a reason).
// Both name the member by alias only; reasons and details are shown as text.

import { formatDateTime } from '../ui/format.js';
import { $, bidi, clear, h, show } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

/**
 * @param {(path: string, options?: import('../client/http.js').ApiOptions) => Promise<any>} call
 * @param {(text: string) => void} notice
 * @param {(conversationId: string) => void} review opens the transcript form for a reported
 *   conversation (a read with a reason, audited)
 */
export function boundariesPanel(call, notice, review) {
  const blocks = $('#blocks');
  const reports = $('#reports');
  const error = $('#boundaries-error');

  /** @param {string | undefined} at */
  const when = (at) => h('time', { datetime: at || '' }, formatDateTime(at));

  /** @param {any} b */
  function blockRow(b) {
    const lift = h('button', { type: 'button', class: 'secondary', testid: 'lift-block' }, t('sup.lift'));
    lift.addEventListener('click', async () => {
      lift.setAttribute('disabled', '');
      try {
        await call(`/api/blocks/${encodeURIComponent(b.id)}`, { method: 'DELETE' });
        notice(t('sup.block_lifted'));
      } catch (err) {
        error.textContent = t('sup.boundaries_failed', { error: /** @type {Error} */ (err).message });
      }
      load();
    });
    return h(
      'tr',
      { testid: 'block-row', dataset: { blockId: b.id } },
      h('th', { scope: 'row', dir: 'auto' }, String(b.specialist?.name || b.specialist?.id || '')),
      h('td', { dir: 'auto' }, String(b.member?.alias || '–')),
      h('td', { testid: 'block-reason' }, b.reason ? bidi(b.reason) : '–'),
      h('td', {}, when(b.at)),
      h('td', {}, when(b.until)),
      h('td', {}, lift),
    );
  }

  /** @param {any} r */
  function reportRow(r) {
    const read = h('button', { type: 'button', class: 'secondary', testid: 'report-review' }, t('sup.review'));
    read.setAttribute('aria-label', t('sup.review_label', { member: String(r.member?.alias || '?') }));
    read.addEventListener('click', () => review(r.conversation_id));
    return h(
      'tr',
      { testid: 'report-row', dataset: { reportId: r.id } },
      h('th', { scope: 'row', dir: 'auto' }, String(r.specialist?.name || r.specialist?.id || '')),
      h('td', { dir: 'auto' }, String(r.member?.alias || '–')),
      h('td', { testid: 'report-reason' }, r.reason ? bidi(r.reason) : '–'),
      h('td', { testid: 'report-details' }, r.details ? bidi(r.details) : '–'),
      h('td', {}, when(r.at)),
      h('td', {}, read),
    );
  }

  async function load() {
    try {
      const [b, r] = await Promise.all([call('/api/blocks'), call('/api/reports')]);
      const inForce = b && Array.isArray(b.blocks) ? b.blocks : [];
      const made = r && Array.isArray(r.reports) ? r.reports : [];
      error.textContent = '';
      clear(blocks).append(...inForce.map(blockRow));
      clear(reports).append(...made.map(reportRow));
      show($('#blocks-empty'), inForce.length === 0);
      show($('#reports-empty'), made.length === 0);
    } catch (err) {
      error.textContent = t('sup.boundaries_failed', { error: /** @type {Error} */ (err).message });
    }
  }

  $('#boundaries-refresh').addEventListener('click', () => load());
  return { load };
}
