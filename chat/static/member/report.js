// Member page, "Report this conversation" (PRODUCT.md §9), under the chat during the
// conversation and after it ends: what happened and, optionally, more; a calm confirmation
// step ("Send this report to a supervisor?"); then `report` → `reported`. The member is
// never matched with that peer again, and a supervisor reads it. A report during the chat
// does not end it. A conversation reported once stays reported on this page (its end does
// not reset the form); a new conversation gets a fresh, closed form.

import { ErrorCode } from '../codes.js';
import { $, show } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */

/**
 * @param {PeerChatClient} client
 * @param {() => string | null} conversationId the conversation on screen (active or just ended)
 */
export function reportPanel(client, conversationId) {
  const box = /** @type {HTMLDetailsElement} */ ($('#report'));
  const form = /** @type {HTMLFormElement} */ ($('#report-form'));
  const submit = /** @type {HTMLButtonElement} */ ($('#report-submit'));
  const confirmBox = $('#report-confirm');
  const yes = /** @type {HTMLButtonElement} */ ($('#report-yes'));
  const no = /** @type {HTMLButtonElement} */ ($('#report-no'));
  const during = $('#report-during');
  const status = $('#report-status');
  /** @type {string | null} the conversation this form is about */
  let about = null;
  /** @type {string | null} the conversation our `report` in flight is about */
  let sending = null;

  /** @param {string} text @param {boolean} done */
  function say(text, done) {
    status.textContent = text;
    submit.disabled = done;
  }

  /** @param {boolean} asking */
  function confirming(asking) {
    show(confirmBox, asking);
    show(submit, !asking);
    if (asking) no.focus();
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (conversationId()) confirming(true);
  });
  no.addEventListener('click', () => {
    confirming(false);
    submit.focus();
  });
  confirmBox.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') no.click();
  });
  yes.addEventListener('click', () => {
    const id = conversationId();
    confirming(false);
    if (!id) return;
    const reason = /** @type {HTMLSelectElement} */ ($('#report-reason')).value;
    const details = /** @type {HTMLTextAreaElement} */ ($('#report-details')).value.trim();
    /** @type {import('../client/socket.js').Frame} */
    const frame = { type: 'report', conversation_id: id, reason };
    if (details) frame.details = details;
    if (client.send(frame)) {
      sending = id;
      say(t('chat.sending'), true);
    } else say(t('common.not_connected_retry'), false);
  });
  client.on('reported', () => {
    if (sending === about) say(t('member.reported'), true);
  });

  return {
    /**
     * A conversation is on screen (`active`: still going): a fresh, closed form for a new
     * one; the same form, as it was, for the one already shown.
     * @param {string} id
     * @param {boolean} active
     */
    showFor(id, active) {
      show(during, active);
      if (about === id) return;
      about = id;
      sending = null;
      form.reset();
      box.open = false;
      confirming(false);
      say('', false);
    },
    /** @param {{code?: string, message?: string}} e an error for our `report` */
    refused(e) {
      if (e.code === ErrorCode.INVALID_STATE) say(t('member.already_reported'), true);
      else say(e.message || t('member.report_failed'), false);
    },
  };
}
