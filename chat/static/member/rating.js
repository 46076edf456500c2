// Member page, "Rate" and "Thanks": after a conversation ends, 1–5 and a comment →
// `feedback`, or "Skip"; then the thank-you screen with "Talk to a peer again".

import { ErrorCode } from '../codes.js';
import { $ } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

/** @typedef {import('./screens.js').Screens} Screens */
/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */

// The conversation waiting for a rating survives a reload of this tab (an id, not a secret).
const FEEDBACK_KEY = 'peerchat.member.feedback';

/**
 * @param {PeerChatClient} client
 * @param {Screens} screens
 * @param {{chatId: () => string | null, onAgain: () => void}} hooks
 */
export function ratingPanel(client, screens, { chatId, onAgain }) {
  const form = /** @type {HTMLFormElement} */ ($('#rating-form'));
  const heading = $('#rating-heading');
  const error = $('#rating-error');
  const thanksHeading = $('#thanks-heading');
  const thanksText = $('#thanks-text');
  const panel = {
    /** @type {string | null} the conversation waiting for a rating */
    feedbackFor: sessionStorage.getItem(FEEDBACK_KEY),

    /** @param {string} id */
    show(id) {
      panel.feedbackFor = id;
      sessionStorage.setItem(FEEDBACK_KEY, id);
      form.reset();
      error.textContent = '';
      screens.set('ended');
      heading.focus();
    },

    /** @param {string} text */
    finish(text) {
      panel.feedbackFor = null;
      sessionStorage.removeItem(FEEDBACK_KEY);
      const id = chatId();
      if (id) client.forget(id);
      thanksText.textContent = text;
      screens.set('thanks');
      thanksHeading.focus();
    },

    /** @param {{code?: string, message?: string}} e an error for our `feedback` */
    refused(e) {
      if (e.code === ErrorCode.NOT_FOUND || e.code === ErrorCode.INVALID_STATE) panel.finish(t('member.take_care'));
      else error.textContent = e.message || t('member.feedback_failed');
    },
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const chosen = /** @type {HTMLInputElement | null} */ (form.querySelector('input[name="rating"]:checked'));
    if (!chosen) {
      error.textContent = t('member.choose_rating');
      return;
    }
    const comment = /** @type {HTMLTextAreaElement} */ ($('#rating-comment')).value.trim();
    /** @type {import('../client/socket.js').Frame} */
    const frame = { type: 'feedback', conversation_id: panel.feedbackFor, rating: Number(chosen.value) };
    if (comment) frame.comment = comment;
    if (!client.send(frame)) error.textContent = t('common.not_connected_retry');
  });
  $('#rating-skip').addEventListener('click', () => panel.finish(t('member.take_care_come_back')));
  $('#again-button').addEventListener('click', onAgain);
  client.on('feedback_saved', () => panel.finish(t('member.thanks_feedback')));
  return panel;
}
