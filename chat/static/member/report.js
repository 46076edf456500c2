// Member page, "Report this conversation" (PRODUCT.md §9), under the rating after a
// conversation ends: what happened and, optionally, more → `report`. The member is then
// never matched with that peer again, and a supervisor reads it.

import { ErrorCode } from '../codes.js';
import { $ } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */

/**
 * @param {PeerChatClient} client
 * @param {() => string | null} conversationId the conversation just ended
 */
export function reportPanel(client, conversationId) {
  const box = /** @type {HTMLDetailsElement} */ ($('#report'));
  const form = /** @type {HTMLFormElement} */ ($('#report-form'));
  const submit = /** @type {HTMLButtonElement} */ ($('#report-submit'));
  const status = $('#report-status');

  /** @param {string} text @param {boolean} done */
  function say(text, done) {
    status.textContent = text;
    submit.disabled = done;
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = conversationId();
    if (!id) return;
    const reason = /** @type {HTMLSelectElement} */ ($('#report-reason')).value;
    const details = /** @type {HTMLTextAreaElement} */ ($('#report-details')).value.trim();
    /** @type {import('../client/socket.js').Frame} */
    const frame = { type: 'report', conversation_id: id, reason };
    if (details) frame.details = details;
    if (client.send(frame)) say(t('chat.sending'), true);
    else say(t('common.not_connected_retry'), false);
  });
  client.on('reported', () =>
    say(t('member.reported'), true),
  );

  return {
    /** A new conversation ended: a fresh, closed form. */
    reset() {
      form.reset();
      box.open = false;
      say('', false);
    },
    /** @param {{code?: string, message?: string}} e an error for our `report` */
    refused(e) {
      if (e.code === ErrorCode.INVALID_STATE) say(t('member.already_reported'), true);
      else say(e.message || t('member.report_failed'), false);
    },
  };
}
