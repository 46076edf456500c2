// Member page, "Rate" and "Thanks": after a conversation ends, 1–5 and a comment →
// `feedback`, or "Skip"; then the thank-you screen with "Talk to a peer again".

import { ErrorCode } from '../codes.js';
import { $ } from '../ui/dom.js';

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
      if (e.code === ErrorCode.NOT_FOUND || e.code === ErrorCode.INVALID_STATE) panel.finish('Take care of yourself.');
      else error.textContent = e.message || 'Your feedback could not be saved.';
    },
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const chosen = /** @type {HTMLInputElement | null} */ (form.querySelector('input[name="rating"]:checked'));
    if (!chosen) {
      error.textContent = 'Please choose a rating from 1 to 5, or skip.';
      return;
    }
    const comment = /** @type {HTMLTextAreaElement} */ ($('#rating-comment')).value.trim();
    /** @type {import('../client/socket.js').Frame} */
    const frame = { type: 'feedback', conversation_id: panel.feedbackFor, rating: Number(chosen.value) };
    if (comment) frame.comment = comment;
    if (!client.send(frame)) error.textContent = 'Not connected. Please try again in a moment.';
  });
  $('#rating-skip').addEventListener('click', () => panel.finish('Take care of yourself. You can come back any time.'));
  $('#again-button').addEventListener('click', onAgain);
  client.on('feedback_saved', () => panel.finish('Thank you for your feedback. Take care of yourself.'));
  return panel;
}
