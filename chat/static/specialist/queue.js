// Specialist page, waiting queue: `queue_watch {}`, then every `queue` frame updates the
// list in place (keyed by request id, so focus on a Claim button survives), waits ticking.

import { ErrorCode } from '../codes.js';
import { formatDuration } from '../ui/format.js';
import { $, h, show } from '../ui/dom.js';
import { describe } from './describe.js';
import { t } from '../ui/i18n.js';

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */
/** @typedef {import('../client/socket.js').Frame} Frame */
/**
 * @typedef {object} Item
 * @property {HTMLLIElement} el
 * @property {HTMLSpanElement} badge
 * @property {HTMLSpanElement} topics
 * @property {HTMLSpanElement} waited
 * @property {HTMLButtonElement} claim
 * @property {import('peerchat-protocol').QueueEntry} [entry]
 * @property {number} [receivedAt]
 */

/**
 * @param {PeerChatClient} client
 * @param {(text: string) => void} notice
 */
export function queuePanel(client, notice) {
  const list = $('#queue');
  const empty = $('#queue-empty');
  /** @type {Map<string, Item>} request_id -> item */
  const items = new Map();

  /** @param {string} requestId */
  function item(requestId) {
    const badge = h('span', { class: 'priority-badge', testid: 'queue-priority', hidden: true }, t('spec.urgent'));
    const topics = h('span', { class: 'queue-topics', testid: 'queue-topics' });
    const waited = h('span', { class: 'waited', testid: 'queue-waited' });
    const claim = h('button', { type: 'button', testid: 'claim-button' }, t('spec.claim'));
    const el = h('li', { class: 'queue-item', testid: 'queue-item', dataset: { requestId } }, badge, topics, waited, claim);
    claim.addEventListener('click', () => {
      if (!client.send({ type: 'claim', request_id: requestId })) return notice(t('common.not_connected'));
      claim.disabled = true;
      claim.textContent = t('spec.claiming');
    });
    return { el, badge, topics, waited, claim };
  }

  /** @param {import('peerchat-protocol').QueueEntry[]} requests */
  function render(requests) {
    const now = Date.now();
    const seen = new Set();
    const order = [];
    for (const entry of requests) {
      seen.add(entry.request_id);
      let it = items.get(entry.request_id);
      if (!it) {
        it = item(entry.request_id);
        items.set(entry.request_id, it);
      }
      it.entry = entry;
      it.receivedAt = now;
      const urgent = entry.priority === 'urgent';
      it.el.classList.toggle('urgent', urgent);
      it.el.dataset.priority = entry.priority || 'normal';
      const summary = describe(entry.tags, entry.language);
      it.claim.setAttribute('aria-label', t(urgent ? 'spec.claim_urgent' : 'spec.claim_request', { summary }));
      show(it.badge, urgent);
      it.topics.textContent = summary;
      tick(it, now);
      order.push(it.el);
    }
    for (const [id, it] of items) {
      if (!seen.has(id)) {
        it.el.remove();
        items.delete(id);
      }
    }
    // Reorder only when needed: moving the focused Claim button would drop keyboard focus.
    const current = [...list.children];
    if (current.length !== order.length || order.some((el, i) => current[i] !== el)) {
      const focused = /** @type {HTMLElement | null} */ (document.activeElement);
      list.append(...order);
      if (focused && list.contains(focused)) focused.focus();
    }
    show(empty, order.length === 0);
  }

  /**
   * @param {Item} it
   * @param {number} now
   */
  function tick(it, now) {
    const waited = (it.entry ? it.entry.waited_s : 0) + Math.floor((now - (it.receivedAt || now)) / 1000);
    it.waited.textContent = t('spec.waiting_for', { time: formatDuration(waited) });
  }

  client.on('queue', (f) => render(Array.isArray(f.requests) ? f.requests : []));

  return {
    /** @param {number} now */
    tickAll(now) {
      for (const it of items.values()) tick(it, now);
    },
    /**
     * An error for our `claim`.
     * @param {{code?: string, message?: string}} e
     * @param {Frame} req
     */
    refused(e, req) {
      const it = items.get(req.request_id);
      if (it) {
        it.claim.disabled = false;
        it.claim.textContent = t('spec.claim');
      }
      notice(e.code === ErrorCode.ALREADY_CLAIMED ? t('spec.already_claimed') : e.message || t('spec.claim_failed'));
    },
  };
}
