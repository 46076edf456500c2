// When to try the socket again after it closed: exponential back-off with "equal jitter"
// (half fixed, half random), 0.5 s doubling to 30 s; at once after a server restart.

import { CloseCode } from '../codes.js';

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 30000;

/**
 * @param {{attempt: number, code: number, online: boolean, random?: () => number}} why
 *   attempt: tries since the last `welcome` (0 for the first); online: navigator.onLine
 * @returns {number} milliseconds
 */
export function reconnectDelay({ attempt, code, online, random = Math.random }) {
  // No network: every try would fail (and log an error). The `online` event reconnects at
  // once; the slow retry only covers a browser whose onLine flag is wrong.
  if (!online) return BACKOFF_CAP_MS;
  if (code === CloseCode.SERVER_RESTARTING) return random() * 1000; // spread over a second
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return ceiling / 2 + random() * (ceiling / 2);
}
