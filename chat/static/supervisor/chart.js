// Supervisor page, the last hour: two SVG step charts (people waiting; longest wait in
// minutes) from queue_stats samples, prefilled from GET /api/stats/history, each with a
// text summary for screen readers.

import { $, clear, s } from '../ui/dom.js';
import { t as say } from '../ui/i18n.js';

const HOUR_MS = 3600 * 1000;
const COALESCE_MS = 5000; // several queue_stats within this window make one sample

/** @typedef {{t: number, waiting: number, longest: number, live?: boolean}} Sample */

export function chartPanel() {
  /** @type {Sample[]} */
  let samples = [];

  function prune() {
    const since = Date.now() - HOUR_MS;
    samples = samples.filter((x) => x.t >= since);
  }

  /**
   * @param {SVGSVGElement} el
   * @param {HTMLElement} desc
   * @param {'waiting' | 'longest'} key
   * @param {(v: number) => number} toUnits
   * @param {string} unitLabel
   * @param {string} title
   */
  function drawChart(el, desc, key, toUnits, unitLabel, title) {
    const [W, H, left, right, top, bottom] = [600, 180, 44, 10, 12, 28];
    const now = Date.now();
    const from = now - HOUR_MS;
    const values = samples.map((p) => toUnits(p[key]));
    const max = Math.max(1, ...values);
    const niceMax = max <= 5 ? Math.ceil(max) : Math.ceil(max / 5) * 5;
    const x = (/** @type {number} */ t) => left + ((t - from) / HOUR_MS) * (W - left - right);
    const y = (/** @type {number} */ v) => top + (1 - v / niceMax) * (H - top - bottom);
    clear(el);
    el.append(s('title', { text: title }));
    for (const frac of [0, 0.5, 1]) {
      const v = niceMax * frac;
      el.append(
        s('line', { x1: left, x2: W - right, y1: y(v), y2: y(v), class: 'grid' }),
        s('text', { x: left - 6, y: y(v) + 5, class: 'axis-label', 'text-anchor': 'end', text: Number.isInteger(v) ? v : v.toFixed(1) }),
      );
    }
    for (const [mins, anchor] of /** @type {[number, string][]} */ ([[60, 'start'], [30, 'middle'], [0, 'end']])) {
      el.append(s('text', { x: x(now - mins * 60000), y: H - 6, class: 'axis-label', 'text-anchor': anchor, text: mins ? say('sup.chart_minutes_ago', { n: mins }) : say('sup.chart_now') }));
    }
    if (samples.length) {
      // A step line: each value holds until the next sample, and the last one until now.
      const pts = [];
      samples.forEach((p, i) => {
        if (i > 0) pts.push(`${x(p.t).toFixed(1)},${y(toUnits(samples[i - 1][key])).toFixed(1)}`);
        pts.push(`${x(p.t).toFixed(1)},${y(toUnits(p[key])).toFixed(1)}`);
      });
      pts.push(`${x(now).toFixed(1)},${y(values[values.length - 1]).toFixed(1)}`);
      el.append(s('polyline', { points: pts.join(' '), class: `series series-${key}` }));
    }
    const current = values.length ? values[values.length - 1] : 0;
    const peak = values.length ? Math.max(...values) : 0;
    const fmt = (/** @type {number} */ v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
    desc.textContent = say('sup.chart_desc', { now: fmt(current), peak: fmt(peak), unit: unitLabel });
  }

  /** @param {string} selector */
  const svg = (selector) => /** @type {SVGSVGElement} */ (document.querySelector(selector));

  function draw() {
    drawChart(svg('#chart-waiting'), $('#chart-waiting-desc'), 'waiting', (v) => v, say('sup.chart_unit_waiting'), say('sup.chart_title_waiting'));
    drawChart(svg('#chart-wait'), $('#chart-wait-desc'), 'longest', (v) => v / 60, say('sup.chart_unit_min'), say('sup.chart_title_wait'));
  }

  return {
    draw,
    /**
     * A live sample; several within COALESCE_MS make one.
     * @param {number} t
     * @param {number} waiting
     * @param {number} longest
     */
    add(t, waiting, longest) {
      const last = samples[samples.length - 1];
      if (last && t - last.t < COALESCE_MS && last.live) {
        last.waiting = waiting;
        last.longest = longest;
      } else {
        samples.push({ t, waiting, longest, live: true });
      }
      prune();
      draw();
    },
    /**
     * The last value again, so the line runs up to "now".
     * @param {number} waiting
     * @param {number} longest
     */
    repeat(waiting, longest) {
      samples.push({ t: Date.now(), waiting, longest, live: false });
      prune();
      draw();
    },
    /** @param {(path: string) => Promise<any>} call the page's API call */
    async prefill(call) {
      try {
        const data = await call('/api/stats/history');
        const first = samples.length ? samples[0].t : Infinity;
        const old = (data && Array.isArray(data.samples) ? data.samples : [])
          .map((/** @type {any} */ p) => ({ t: Date.parse(p.at), waiting: Number(p.waiting) || 0, longest: Number(p.longest_wait_s) || 0 }))
          .filter((/** @type {Sample} */ p) => Number.isFinite(p.t) && p.t < first)
          .sort((/** @type {Sample} */ a, /** @type {Sample} */ b) => a.t - b.t);
        samples = [...old, ...samples];
        prune();
        draw();
      } catch {
        /* the live stream fills the chart on its own */
      }
    },
  };
}
