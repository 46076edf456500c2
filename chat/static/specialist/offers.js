// Specialist page, offers: each with topics, language, the member's note, time waited, an
// urgent highlight and a 1 s countdown; Accept / Decline. Gone on `offer_revoked`,
// `declined`, an expired error or the countdown reaching zero.

import { ErrorCode } from '../codes.js';
import { formatDuration } from '../ui/format.js';
import { $, bidi, h, show } from '../ui/dom.js';
import { describe } from './describe.js';
import { t, tParts } from '../ui/i18n.js';

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */
/** @typedef {import('../client/socket.js').Frame} Frame */
/** @typedef {import('peerchat-protocol').OfferMade} OfferMade */
/**
 * @typedef {object} Offer
 * @property {OfferMade} frame
 * @property {number} deadline
 * @property {HTMLLIElement} el
 * @property {HTMLParagraphElement} countdown
 * @property {HTMLButtonElement} accept
 * @property {HTMLButtonElement} decline
 * @property {'open' | 'accepting' | 'declining' | 'gone'} phase
 */

const EXPIRED_SHOWN_MS = 3000;
// offer_revoked's reason → what the notice says; any other reason is a plain "withdrawn".
const WITHDRAWN = {
  cancelled: 'spec.withdrawn_cancelled',
  claimed: 'spec.withdrawn_taken',
  blocked: 'spec.withdrawn_blocked',
};

/**
 * @param {PeerChatClient} client
 * @param {{notice: (text: string) => void, shout: (text: string) => void, onCount: () => void}} hooks
 */
export function offersPanel(client, { notice, shout, onCount }) {
  const list = $('#offers');
  const empty = $('#offers-empty');
  const count = $('#offer-count');
  /** @type {Map<string, Offer>} offer_id -> offer */
  const offers = new Map();

  /** @param {OfferMade} frame */
  function add(frame) {
    if (offers.has(frame.offer_id)) return;
    const urgent = frame.priority === 'urgent';
    const countdown = h('p', { class: 'countdown', role: 'timer', testid: 'offer-countdown' });
    const accept = h('button', { type: 'button', class: 'primary', testid: 'offer-accept' }, t('spec.accept'));
    const decline = h('button', { type: 'button', testid: 'offer-decline' }, t('spec.decline'));
    const summary = describe(frame.tags, frame.language);
    accept.setAttribute('aria-label', t('spec.accept_offer', { summary }));
    decline.setAttribute('aria-label', t('spec.decline_offer', { summary }));
    const el = h(
      'li',
      { class: ['offer', urgent && 'urgent'], testid: 'offer', dataset: { offerId: frame.offer_id, priority: frame.priority || 'normal' } },
      urgent ? h('p', { class: 'priority-badge', testid: 'offer-priority' }, t('spec.urgent')) : null,
      h('p', { class: 'offer-topics', testid: 'offer-topics' }, summary),
      // A conversation handed on (PRODUCT.md §9): who hands it on, and their note.
      frame.transfer ? h('p', { class: 'offer-transfer', testid: 'offer-transfer' }, ...tParts('transfer.offer_from', { name: bidi(frame.transfer.from.name) })) : null,
      frame.transfer && frame.transfer.note ? h('p', { class: 'offer-note handoff-note', dir: 'auto', testid: 'offer-transfer-note' }, frame.transfer.note) : null,
      frame.note ? h('p', { class: 'offer-note', dir: 'auto', testid: 'offer-note' }, frame.note) : null,
      h('p', { class: 'hint' }, t('spec.waited_so_far', { time: formatDuration(frame.waited_s) })),
      // PRODUCT.md §5 v1.1: the member has no live connection (they keep their place a while).
      frame.member_online === false
        ? h('p', { class: 'hint', testid: 'offer-member-away' }, t('spec.member_away'))
        : null,
      countdown,
      h('div', { class: 'button-row' }, accept, decline),
    );
    /** @type {Offer} */
    const offer = { frame, deadline: Date.now() + Math.max(0, Number(frame.expires_in_s) || 0) * 1000, el, countdown, accept, decline, phase: 'open' };
    accept.addEventListener('click', () => {
      if (!client.send({ type: 'accept', offer_id: frame.offer_id })) return notice(t('common.not_connected'));
      offer.phase = 'accepting';
      accept.disabled = decline.disabled = true;
      accept.textContent = t('spec.accepting');
    });
    decline.addEventListener('click', () => {
      if (!client.send({ type: 'decline', offer_id: frame.offer_id })) return notice(t('common.not_connected'));
      offer.phase = 'declining';
      accept.disabled = decline.disabled = true;
    });
    offers.set(frame.offer_id, offer);
    list.append(el);
    tick(offer);
    renderCount();
    shout(t(urgent ? 'spec.shout_urgent_offer' : 'spec.shout_offer', { summary, n: frame.expires_in_s }));
  }

  /**
   * @param {string} offerId
   * @param {string} [why] said in the notice
   */
  function remove(offerId, why) {
    const offer = offers.get(offerId);
    if (!offer) return;
    offers.delete(offerId);
    const hadFocus = offer.el.contains(document.activeElement);
    offer.el.remove();
    renderCount();
    if (why) notice(why);
    if (hadFocus) $('#offers-heading').focus();
  }

  /** @param {Offer} offer */
  function tick(offer) {
    const left = Math.ceil((offer.deadline - Date.now()) / 1000);
    if (left > 0) {
      offer.countdown.textContent = t('spec.expires_in', { n: left });
      return;
    }
    if (offer.phase === 'gone') return;
    offer.phase = 'gone';
    offer.countdown.textContent = t('spec.expired');
    offer.el.classList.add('expired');
    offer.accept.disabled = offer.decline.disabled = true;
    setTimeout(() => remove(offer.frame.offer_id), EXPIRED_SHOWN_MS);
  }

  function renderCount() {
    const n = offers.size;
    count.textContent = String(n);
    show(count, n > 0);
    show(empty, n === 0);
    onCount();
  }

  client.on('offer', add);
  client.on('declined', (f) => remove(f.offer_id, t('spec.offer_declined')));
  client.on('offer_revoked', (f) => remove(f.offer_id, t(WITHDRAWN[/** @type {keyof WITHDRAWN} */ (f.reason)] || 'spec.withdrawn')));

  return {
    get size() {
      return offers.size;
    },
    tickAll() {
      for (const offer of offers.values()) tick(offer);
    },
    /** @param {OfferMade[]} open the offers `welcome` lists: any other one is gone */
    reconcile(open) {
      const ids = new Set(open.map((o) => o.offer_id));
      for (const id of [...offers.keys()]) if (!ids.has(id)) remove(id);
      for (const o of open) add(o);
    },
    /** A conversation started: the offer being accepted has done its job. */
    dropAccepting() {
      const accepting = [...offers.values()].find((o) => o.phase === 'accepting');
      if (accepting) remove(accepting.frame.offer_id);
    },
    /**
     * An error for our `accept` or `decline`.
     * @param {{code?: string, message?: string}} e
     * @param {Frame} req
     */
    refused(e, req) {
      const offer = offers.get(req.offer_id);
      if (e.code === ErrorCode.OFFER_EXPIRED || e.code === ErrorCode.NOT_FOUND) {
        remove(req.offer_id, t('spec.offer_gone'));
      } else if (offer) {
        offer.phase = 'open';
        offer.accept.disabled = offer.decline.disabled = false;
        offer.accept.textContent = t('spec.accept');
        notice(e.message || t('spec.accept_failed'));
      }
    },
  };
}
