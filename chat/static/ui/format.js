// How durations, waits and times read on the pages.

import { t } from './i18n.js';

/** @param {unknown} totalSeconds "42 s", "3 min 05 s", "1 h 12 min" */
export function formatDuration(totalSeconds) {
  const s = Math.max(0, Math.round(Number(totalSeconds) || 0));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** @param {unknown} totalSeconds a rough estimate for a person waiting: "about 3 minutes" */
export function formatWait(totalSeconds) {
  const s = Math.max(0, Math.round(Number(totalSeconds) || 0));
  if (s < 60) return t('wait.under_a_minute');
  const m = Math.round(s / 60);
  if (m < 60) return m === 1 ? t('wait.one_minute') : t('wait.minutes', { n: m });
  return t('wait.hours', { h: Math.floor(m / 60), m: m % 60 });
}

/** @param {string | undefined} iso */
export function formatTime(iso) {
  const d = new Date(iso ?? '');
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** @param {string | undefined} iso */
export function formatDateTime(iso) {
  const d = new Date(iso ?? '');
  if (Number.isNaN(d.getTime())) return String(iso || '');
  return d.toLocaleString([], { dateStyle: 'short', timeStyle: 'medium' });
}
