// Supervisor page, suspending a member (PRODUCT.md §9): PUT /api/members/{id}/suspension
// {"until","reason"} and DELETE to lift it, both audited by the server. The member is named
// by the account id from the organisation's own records: this page never shows one.

import { formatDateTime } from '../ui/format.js';
import { $ } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

/**
 * @param {(path: string, options?: import('../client/http.js').ApiOptions) => Promise<any>} call
 */
export function suspensionsPanel(call) {
  const form = /** @type {HTMLFormElement} */ ($('#suspend-form'));
  const member = /** @type {HTMLInputElement} */ ($('#suspend-member'));
  const until = /** @type {HTMLInputElement} */ ($('#suspend-until'));
  const reason = /** @type {HTMLInputElement} */ ($('#suspend-reason'));
  const status = $('#suspend-status');
  const path = () => `/api/members/${encodeURIComponent(member.value.trim())}/suspension`;

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    // datetime-local is the supervisor's own time; the server wants an offset.
    const when = new Date(until.value);
    if (!member.value.trim() || Number.isNaN(when.getTime())) return;
    if (when.getTime() <= Date.now()) {
      status.textContent = t('sup.suspend_past');
      return;
    }
    try {
      const done = await call(path(), { method: 'PUT', body: { until: when.toISOString(), reason: reason.value.trim() } });
      status.textContent = t('sup.suspended_until', { until: formatDateTime(done && done.until) });
    } catch (err) {
      status.textContent = t('sup.suspend_failed', { error: /** @type {Error} */ (err).message });
    }
  });
  $('#suspend-lift').addEventListener('click', async () => {
    if (!member.value.trim()) {
      member.focus();
      return;
    }
    try {
      await call(path(), { method: 'DELETE' });
      status.textContent = t('sup.suspension_lifted');
    } catch (err) {
      const notSuspended = /** @type {{status?: number}} */ (err).status === 404;
      status.textContent = notSuspended ? t('sup.not_suspended') : t('sup.suspend_failed', { error: /** @type {Error} */ (err).message });
    }
  });
}
