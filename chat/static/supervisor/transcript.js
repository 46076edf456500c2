// Supervisor page, transcripts: a read needs a conversation id and a reason
// (GET /api/conversations/{id}/messages, the reason in X-Peerchat-Reason); every read shows
// up in the audit log (supervisor/audit.js), which `read()` reloads after each one.

import { formatDateTime } from '../ui/format.js';
import { $, clear, h, show } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

/**
 * @param {(path: string, options?: import('../client/http.js').ApiOptions) => Promise<any>} call
 * @param {() => void} read after every attempt to read (the audit log reloads)
 */
export function transcriptPanel(call, read) {
  const result = $('#transcript-result');

  /** @param {any} data */
  function render(data) {
    const list = clear($('#transcript-messages'));
    const messages = data && Array.isArray(data.messages) ? data.messages : [];
    for (const m of messages) {
      const sender = m.sender || {};
      list.append(
        h(
          'li',
          { class: ['message', sender.role === 'specialist' ? 'own' : 'peer'], testid: 'transcript-message', dataset: { seq: m.seq } },
          h('span', { class: 'sender', dir: 'auto' }, `${sender.name || '?'} (${sender.role || '?'})`),
          h('p', { class: 'body', dir: 'auto' }, typeof m.body === 'string' ? m.body : ''),
          h('span', { class: 'meta' }, h('time', { datetime: m.sent_at || '' }, formatDateTime(m.sent_at)), ` · #${m.seq}`),
        ),
      );
    }
    const title = $('#transcript-title');
    title.textContent = t(messages.length === 1 ? 'sup.transcript_title_one' : 'sup.transcript_title', { id: data.conversation_id, n: messages.length });
    show(result, true);
    title.focus();
  }

  $('#transcript-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const id = /** @type {HTMLInputElement} */ ($('#transcript-id')).value.trim();
    const reason = /** @type {HTMLTextAreaElement} */ ($('#transcript-reason')).value.trim();
    const error = $('#transcript-error');
    error.textContent = '';
    if (!id) return void (error.textContent = t('sup.enter_conversation_id'));
    if (!reason) return void (error.textContent = t('sup.reason_required'));
    try {
      // The reason goes in a header, not the URL: proxies log query strings (PRODUCT.md §6).
      // Percent-encoded, as header values carry only ASCII safely; the server decodes it.
      const headers = { 'X-Peerchat-Reason': encodeURIComponent(reason) };
      render(await call(`/api/conversations/${encodeURIComponent(id)}/messages`, { headers }));
    } catch (err) {
      show(result, false);
      const status = /** @type {{status?: number, message: string}} */ (err);
      error.textContent = status.status === 404 ? t('sup.no_such_conversation') : t('sup.transcript_failed', { error: status.message });
    }
    read();
  });

  return {
    /** @param {string} conversationId from the conversation list: fill the id, ask the reason */
    prefill(conversationId) {
      /** @type {HTMLInputElement} */ ($('#transcript-id')).value = conversationId;
      $('#transcript-reason').focus();
    },
  };
}
