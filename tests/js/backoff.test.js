// The reconnect schedule (chat/static/client/backoff.js), with the dice fixed.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BACKOFF_CAP_MS, reconnectDelay } from '../../chat/static/client/backoff.js';
import { CloseCode } from '../../chat/static/codes.js';

const low = () => 0;
const high = () => 0.999999;

test('equal jitter: half fixed, half random, doubling from 0.5 s', () => {
  const range = (attempt) => [low, high].map((random) => reconnectDelay({ attempt, code: 1006, online: true, random }));
  assert.deepEqual(range(0).map(Math.round), [250, 500]);
  assert.deepEqual(range(1).map(Math.round), [500, 1000]);
  assert.deepEqual(range(3).map(Math.round), [2000, 4000]);
});

test('capped at 30 s however many tries', () => {
  for (const attempt of [6, 10, 50]) {
    const top = reconnectDelay({ attempt, code: CloseCode.SLOW_CONSUMER, online: true, random: high });
    assert.ok(top <= BACKOFF_CAP_MS && top > BACKOFF_CAP_MS - 1);
    assert.equal(reconnectDelay({ attempt, code: CloseCode.FLOOD, online: true, random: low }), BACKOFF_CAP_MS / 2);
  }
});

test('a restarting server: within a second, even after many tries', () => {
  const delay = reconnectDelay({ attempt: 9, code: CloseCode.SERVER_RESTARTING, online: true, random: high });
  assert.ok(delay < 1000);
});

test('offline: the slow retry only (the online event reconnects at once)', () => {
  assert.equal(reconnectDelay({ attempt: 0, code: CloseCode.SERVER_RESTARTING, online: false }), BACKOFF_CAP_MS);
});
