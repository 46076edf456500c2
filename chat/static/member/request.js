// Member page, "Ask" and "Wait": the request form, then the place in line and estimated
// wait until a peer joins, with "Cancel request".

import { ErrorCode } from '../codes.js';
import { formatDateTime, formatWait } from '../ui/format.js';
import { $ } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

/** @typedef {import('./screens.js').Screens} Screens */
/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */

/**
 * @param {PeerChatClient} client
 * @param {Screens} screens
 * @param {(...parts: (Node | string)[]) => void} notice
 * @param {() => string | null} [preferred] the past peer the member asked for again, if any
 */
export function requestPanel(client, screens, notice, preferred = () => null) {
  const form = $('#request-form');
  const button = /** @type {HTMLButtonElement} */ ($('#request-button'));
  const error = $('#request-error');
  const heading = $('#queue-heading');
  const position = $('#queue-position');
  const wait = $('#queue-wait');
  const topics = $('#queue-topics');
  /** @type {string | null} */
  let requestId = null;

  screens.onChange(() => {
    button.disabled = false;
  });

  /** @param {string} tag */
  const tagLabel = (tag) => {
    const label = t(`member.tag.${tag}`);
    return label.startsWith('member.tag.') ? tag : label;
  };

  /** @param {string[] | undefined} tags */
  function showTopics(tags) {
    if (tags) topics.textContent = tags.length ? t('chat.topics', { topics: tags.map(tagLabel).join(', ') }) : '';
  }

  /**
   * @param {unknown} pos
   * @param {unknown} eta
   */
  function update(pos, eta) {
    const p = Number.isInteger(pos) ? String(pos) : '–';
    const w = formatWait(eta);
    if (position.textContent !== p) position.textContent = p;
    if (wait.textContent !== w) wait.textContent = w;
  }

  /** @param {{request_id: string, position?: number, estimated_wait_s?: number, tags?: string[]}} f */
  function showQueued(f) {
    requestId = f.request_id;
    update(f.position, f.estimated_wait_s);
    showTopics(f.tags);
    if (screens.view !== 'queued') {
      screens.set('queued');
      heading.focus();
    }
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    error.textContent = '';
    const tags = [.../** @type {NodeListOf<HTMLInputElement>} */ (form.querySelectorAll('input[name="tag"]:checked'))].map((i) => i.value);
    const language = /** @type {HTMLSelectElement} */ ($('#request-language')).value;
    const note = /** @type {HTMLTextAreaElement} */ ($('#note')).value.trim();
    /** @type {import('../client/socket.js').Frame} */
    const frame = { type: 'request', tags };
    if (language) frame.language = language;
    if (note) frame.note = note;
    const prefer = preferred();
    if (prefer) frame.prefer_specialist = prefer;
    if (!client.send(frame)) {
      error.textContent = t('common.not_connected_retry');
      return;
    }
    button.disabled = true;
    showTopics(tags);
  });

  $('#cancel-button').addEventListener('click', () => {
    if (!requestId) return;
    if (!client.send({ type: 'cancel', request_id: requestId })) notice(t('common.not_connected_retry'));
  });

  client.on('queued', showQueued);
  client.on('queue_update', (f) => {
    if (screens.view === 'chat') return;
    // The past peer the member asked for could not take it in time: say so, once.
    if (f.notice === 'preferred_unavailable') notice(t('member.preferred_unavailable'));
    if (screens.view !== 'queued' || f.request_id !== requestId) showQueued(f);
    else update(f.position, f.estimated_wait_s);
  });
  client.on('cancelled', (f) => {
    if (f.reason === 'abandoned' && screens.view !== 'chat') {
      // Told after `welcome` on the first connection since the member's grace ran out.
      if (f.request_id === requestId || screens.view === 'start') {
        requestId = null;
        screens.set('start');
        notice(t('member.abandoned'));
      }
      return;
    }
    if (f.request_id !== requestId) return;
    requestId = null;
    screens.set('start');
    notice(f.reason && f.reason !== 'cancelled' ? t('member.request_closed', { reason: f.reason }) : t('member.request_cancelled'));
    $('#start-heading').focus();
  });
  client.on('conversation_started', () => {
    requestId = null;
  });

  return {
    showQueued,
    /** @param {{code?: string, message?: string, until?: string | null}} e an error for our `request` */
    refused(e) {
      button.disabled = false;
      // Suspended (PRODUCT.md §9): said plainly, with the crisis resources one click away.
      if (e.code === ErrorCode.SUSPENDED) error.textContent = t('member.suspended', { until: formatDateTime(e.until || undefined) });
      else error.textContent = e.message || t('member.request_failed');
    },
  };
}
