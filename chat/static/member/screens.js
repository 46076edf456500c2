// Member page: which screen shows (start, queued, chat, ended = chat + rating, thanks). The
// report form goes with the chat: during it and after it ends (PRODUCT.md §9).

import { $, show } from '../ui/dom.js';

/** @typedef {'start' | 'queued' | 'chat' | 'ended' | 'thanks'} View */

export class Screens {
  constructor() {
    /** @type {View} */
    this.view = 'start';
    this.notice = $('#notice');
    this.start = $('#start-view');
    this.queue = $('#queue-view');
    this.chatSlot = $('#chat-slot');
    this.rating = $('#rating-view');
    this.report = $('#report');
    this.thanks = $('#thanks-view');
    /** @type {(() => void)[]} */
    this.changeHooks = [];
  }

  /** @param {() => void} fn runs on every set() */
  onChange(fn) {
    this.changeHooks.push(fn);
  }

  /** @param {View} view */
  set(view) {
    // A notice belongs to the screen it was given on ("Ana has joined" must not linger on
    // the rating or thank-you screen); one announced with this change still arrives.
    if (view !== this.view) this.notice.textContent = '';
    this.view = view;
    show(this.start, view === 'start');
    show(this.queue, view === 'queued');
    show(this.chatSlot, view === 'chat' || view === 'ended');
    show(this.rating, view === 'ended');
    show(this.report, view === 'chat' || view === 'ended');
    show(this.thanks, view === 'thanks');
    for (const fn of this.changeHooks) fn();
  }
}
