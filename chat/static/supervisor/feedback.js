// Supervisor page, members' feedback: GET /api/feedback?specialist=&weeks=, by specialist
// and week (count, average, comments). The answer names no member, and neither does this.

import { formatDateTime } from '../ui/format.js';
import { $, bidi, clear, h, show } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

/** @param {(path: string, options?: import('../client/http.js').ApiOptions) => Promise<any>} call */
export function feedbackPanel(call) {
  const body = $('#feedback');
  const picker = /** @type {HTMLSelectElement} */ ($('#feedback-specialist'));
  const weeks = /** @type {HTMLSelectElement} */ ($('#feedback-weeks'));
  const error = $('#feedback-error');

  /** @param {any} w */
  function row(w) {
    const comments = Array.isArray(w.comments) ? w.comments : [];
    return h(
      'tr',
      { testid: 'feedback-row', dataset: { specialistId: w.specialist_id, week: w.week } },
      h('td', {}, h('time', { datetime: w.week }, String(w.week))),
      h('th', { scope: 'row', dir: 'auto' }, String(w.specialist_name || w.specialist_id)),
      h('td', { testid: 'feedback-count' }, String(w.count)),
      h('td', { testid: 'feedback-average' }, `${Number(w.average).toFixed(1)} / 5`),
      h(
        'td',
        {},
        comments.length
          ? h(
              'ul',
              { class: 'comments' },
              comments.map((/** @type {any} */ c) =>
                h(
                  'li',
                  { testid: 'feedback-comment' },
                  h('span', { class: 'rating' }, `${c.rating} / 5: `),
                  bidi(c.comment),
                  h('span', { class: 'meta' }, ' · ', h('time', { datetime: c.at || '' }, formatDateTime(c.at))),
                ),
              ),
            )
          : '–',
      ),
    );
  }

  async function load() {
    const q = new URLSearchParams({ weeks: weeks.value });
    if (picker.value) q.set('specialist', picker.value);
    try {
      const data = await call(`/api/feedback?${q}`);
      const found = data && Array.isArray(data.weeks) ? data.weeks : [];
      error.textContent = '';
      clear(body).append(...found.map(row));
      show($('#feedback-empty'), found.length === 0);
    } catch (err) {
      error.textContent = t('sup.feedback_load_failed', { error: /** @type {Error} */ (err).message });
    }
  }

  $('#feedback-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    load();
  });

  return {
    load,
    /** @param {{id: string, name: string}[]} list the roster, for the specialist picker */
    specialists(list) {
      const chosen = picker.value;
      const options = [...list]
        .sort((a, b) => String(a.name).localeCompare(String(b.name)))
        .map((sp) => h('option', { value: sp.id, selected: sp.id === chosen }, `${sp.name} (${sp.id})`));
      picker.replaceChildren(h('option', { value: '' }, t('sup.everyone')), ...options);
    },
  };
}
