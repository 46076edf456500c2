// Supervisor page, live queue load: the tiles, waiting by topic and the alerts, all from
// `queue_stats` frames.

import { formatDuration, formatTime } from '../ui/format.js';
import { $, clear, h, show } from '../ui/dom.js';

const URGENT = 'urgent_request';

/** @typedef {import('peerchat-protocol').QueueStats} QueueStats */
/** @typedef {import('peerchat-protocol').Alert} Alert */

export function statsPanel() {
  /** @type {QueueStats | null} the last queue_stats frame */
  let latest = null;
  let latestAt = 0;
  const alertKeys = new Set();

  /**
   * @param {QueueStats} stats
   * @returns {number} when it arrived
   */
  function render(stats) {
    latest = stats;
    latestAt = Date.now();
    $('#stat-waiting').textContent = String(stats.waiting ?? 0);
    $('#stat-active').textContent = String(stats.active_conversations ?? 0);
    const sp = stats.specialists || {};
    $('#stat-available').textContent = String(sp.available ?? 0);
    $('#stat-busy').textContent = String(sp.busy ?? 0);
    $('#stat-away').textContent = String(sp.away ?? 0);
    tickLongest();
    $('#stats-updated').textContent = `Updated ${formatTime(new Date().toISOString())}`;
    renderByTag(stats.by_tag || {});
    renderAlerts(Array.isArray(stats.alerts) ? stats.alerts : []);
    return latestAt;
  }

  // longest_wait_s is a snapshot; while people wait it grows between frames.
  function tickLongest() {
    if (!latest) return;
    $('#stat-longest').textContent = latest.waiting ? formatDuration(longestNow()) : '–';
  }

  function longestNow() {
    const extra = latest && latest.waiting ? Math.floor((Date.now() - latestAt) / 1000) : 0;
    return ((latest && latest.longest_wait_s) || 0) + extra;
  }

  /** @param {Record<string, import('peerchat-protocol').TagLoad>} byTag */
  function renderByTag(byTag) {
    const body = clear($('#by-tag'));
    const rows = Object.entries(byTag).sort((a, b) => (b[1].waiting || 0) - (a[1].waiting || 0) || a[0].localeCompare(b[0]));
    for (const [tag, load] of rows) {
      body.append(
        h(
          'tr',
          { testid: 'by-tag-row', dataset: { tag } },
          h('th', { scope: 'row' }, tag),
          h('td', { testid: 'by-tag-waiting' }, String(load.waiting ?? 0)),
          h('td', {}, formatDuration(load.longest_wait_s)),
        ),
      );
    }
    show($('#by-tag-empty'), rows.length === 0);
  }

  /** @param {Alert[]} alerts */
  function renderAlerts(alerts) {
    const list = $('#alerts');
    const rank = (/** @type {Alert} */ a) => (a.kind === URGENT ? 0 : 1);
    const sorted = [...alerts].sort((a, b) => rank(a) - rank(b) || (b.waited_s || 0) - (a.waited_s || 0));
    const keys = new Set(sorted.map((a) => `${a.kind}:${a.request_id}`));
    // Rebuild, but only when the set changed, so the live region announces new alerts once.
    if (keys.size === alertKeys.size && [...keys].every((k) => alertKeys.has(k))) {
      updateAlertTimes(sorted);
      return;
    }
    alertKeys.clear();
    for (const k of keys) alertKeys.add(k);
    clear(list);
    for (const a of sorted) {
      const urgent = a.kind === URGENT;
      const topics = a.tags && a.tags.length ? a.tags.join(', ') : 'no topics';
      list.append(
        h(
          'li',
          { class: ['alert', urgent && 'urgent'], testid: 'alert', dataset: { kind: a.kind, requestId: a.request_id } },
          h('strong', {}, urgent ? 'Urgent request' : 'Long wait'),
          ` · ${topics} · waiting `,
          h('span', { class: 'alert-waited' }, formatDuration(a.waited_s)),
          h('span', { class: 'hint' }, ` · request ${String(a.request_id).slice(0, 8)}`),
        ),
      );
    }
    show($('#alerts-empty'), sorted.length === 0);
  }

  /** @param {Alert[]} alerts */
  function updateAlertTimes(alerts) {
    for (const a of alerts) {
      for (const li of /** @type {HTMLCollectionOf<HTMLElement>} */ ($('#alerts').children)) {
        if (li.dataset.kind === a.kind && li.dataset.requestId === a.request_id) {
          $('.alert-waited', li).textContent = formatDuration(a.waited_s);
        }
      }
    }
  }

  return {
    render,
    tickLongest,
    /** The last frame's counts with the longest wait grown to now, or null before any. */
    now() {
      return latest ? { waiting: latest.waiting || 0, longest: longestNow() } : null;
    },
  };
}
