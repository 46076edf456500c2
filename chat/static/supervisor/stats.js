// Supervisor page, live queue load: the tiles, waiting by topic and the alerts, all from
// `queue_stats` frames.

import { formatDuration, formatTime } from '../ui/format.js';
import { $, clear, h, show } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

const URGENT = 'urgent_request';
// What each alert kind is called on the dashboard (docs/safety.md).
const KIND_LABELS = {
  urgent_request: 'sup.alert.urgent_request',
  long_wait: 'sup.alert.long_wait',
  risk_message: 'sup.alert.risk_message',
  flagged: 'sup.alert.flagged',
  report: 'sup.alert.report',
  block: 'sup.alert.block',
};
const SERIOUS = new Set([URGENT, 'risk_message', 'flagged']);

/** @typedef {import('peerchat-protocol').QueueStats} QueueStats */
/** @typedef {import('peerchat-protocol').Alert} Alert */

/**
 * @param {(alertId: string) => void} acknowledge sends `ack_alert`
 * @param {(conversationId: string) => void} watch opens the monitor form for a conversation
 */
export function statsPanel(acknowledge = (_alertId) => {}, watch = (_conversationId) => {}) {
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
    $('#stats-updated').textContent = t('sup.updated_at', { time: formatTime(new Date().toISOString()) });
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
    const rank = (/** @type {Alert} */ a) => (SERIOUS.has(a.kind) ? 0 : 1);
    const sorted = [...alerts].sort((a, b) => rank(a) - rank(b) || (b.waited_s || 0) - (a.waited_s || 0));
    const keys = new Set(sorted.map((a) => a.id));
    // Rebuild, but only when the set changed, so the live region announces new alerts once.
    if (keys.size === alertKeys.size && [...keys].every((k) => alertKeys.has(k))) {
      updateAlertTimes(sorted);
      return;
    }
    alertKeys.clear();
    for (const k of keys) alertKeys.add(k);
    clear(list);
    for (const a of sorted) {
      const urgent = SERIOUS.has(a.kind);
      const labelKey = KIND_LABELS[/** @type {keyof typeof KIND_LABELS} */ (a.kind)];
      const label = labelKey ? t(labelKey) : a.kind;
      const ack = h('button', { type: 'button', class: 'secondary', testid: 'alert-ack' }, t('sup.acknowledge'));
      ack.setAttribute('aria-label', t('sup.acknowledge_label', { label }));
      ack.addEventListener('click', () => {
        ack.setAttribute('disabled', '');
        acknowledge(a.id);
      });
      const about = a.request_id
        ? [
            ` · ${a.tags && a.tags.length ? a.tags.join(', ') : t('sup.no_topics')} · ${t('sup.waiting_for')} `,
            h('span', { class: 'alert-waited' }, formatDuration(a.waited_s ?? 0)),
            h('span', { class: 'hint' }, ` · ${t('sup.request_short', { id: String(a.request_id).slice(0, 8) })}`),
          ]
        : [
            a.level ? ` · ${a.level}` : '',
            a.note ? h('span', { class: 'alert-note' }, ` · “${a.note}”`) : '',
            h('span', { class: 'hint' }, ` · ${t('sup.conversation_short', { id: String(a.conversation_id || '').slice(0, 8) })}`),
          ];
      const monitor = a.conversation_id
        ? h('button', { type: 'button', class: 'secondary', testid: 'alert-monitor' }, t('mon.monitor'))
        : null;
      if (monitor) {
        monitor.setAttribute('aria-label', t('mon.monitor_label', { label }));
        monitor.addEventListener('click', () => watch(String(a.conversation_id)));
      }
      list.append(
        h(
          'li',
          {
            class: ['alert', urgent && 'urgent'],
            testid: 'alert',
            dataset: { kind: a.kind, requestId: a.request_id || '', alertId: a.id },
          },
          h('strong', {}, label),
          ...about,
          ' ',
          ack,
          monitor ? [' ', monitor] : null,
        ),
      );
    }
    show($('#alerts-empty'), sorted.length === 0);
  }

  /** @param {Alert[]} alerts */
  function updateAlertTimes(alerts) {
    for (const a of alerts) {
      for (const li of /** @type {HTMLCollectionOf<HTMLElement>} */ ($('#alerts').children)) {
        const waited = li.querySelector('.alert-waited');
        if (li.dataset.alertId === a.id && waited) waited.textContent = formatDuration(a.waited_s ?? 0);
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
