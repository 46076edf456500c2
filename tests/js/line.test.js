// The client's ordering rules (chat/static/client/line.js), run with node's test runner:
// each message reaches the page once and in seq order, a gap is held and filled, and a gap
// the server cannot fill is skipped instead of stalling the conversation.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ConversationLine } from '../../chat/static/client/line.js';

const msg = (seq) => ({ conversation_id: 'c1', seq, body: `m${seq}` });

/** What the client does with take(): hand `ready` to the page, moving `last` along. */
function shown(line, message) {
  const { ready, fill } = line.take(message);
  for (const m of ready) line.last = m.seq;
  return { seqs: ready.map((m) => m.seq), fill };
}

test('in order, once: duplicates and replays are dropped', () => {
  const line = new ConversationLine(0);
  assert.deepEqual(shown(line, msg(1)), { seqs: [1], fill: false });
  assert.deepEqual(shown(line, msg(2)), { seqs: [2], fill: false });
  assert.deepEqual(shown(line, msg(2)), { seqs: [], fill: false });
  assert.deepEqual(shown(line, msg(1)), { seqs: [], fill: false });
  assert.equal(line.last, 2);
});

test('a message beyond last + 1 is held back until the gap is filled', () => {
  const line = new ConversationLine(1);
  assert.deepEqual(shown(line, msg(4)), { seqs: [], fill: true });
  assert.deepEqual(shown(line, msg(3)), { seqs: [], fill: true });
  assert.deepEqual(shown(line, msg(4)), { seqs: [], fill: false }); // already held
  assert.deepEqual(shown(line, msg(2)), { seqs: [2, 3, 4], fill: false });
  assert.equal(line.buffer.size, 0);
});

test('a conversation whose start is unknown holds everything and asks for history', () => {
  const line = new ConversationLine(null);
  assert.deepEqual(shown(line, msg(7)), { seqs: [], fill: true });
  line.last = 0; // the history answer says where we start
  for (const seq of [1, 2, 3, 4, 5]) shown(line, msg(seq));
  assert.deepEqual(shown(line, msg(6)), { seqs: [6, 7], fill: false });
});

test('after a history page: done, ask again, or skip a gap the server cannot fill', () => {
  const line = new ConversationLine(2);
  assert.equal(line.afterHistory(false, 2), 'done');
  shown(line, msg(6));
  shown(line, msg(7));
  assert.equal(line.afterHistory(true, 2), 'more'); // the page was full: there may be more
  shown(line, msg(3));
  assert.equal(line.afterHistory(false, 2), 'more'); // it moved the line on: ask again
  const gap = line.afterHistory(false, 3);
  assert.deepEqual({ from: gap.from, to: gap.to, next: gap.next.seq }, { from: 4, to: 5, next: 6 });
  // The skipped-to message is handed on, not taken for a duplicate of itself, and it
  // releases what was held behind it.
  assert.deepEqual(shown(line, gap.next), { seqs: [6, 7], fill: false });
  assert.equal(line.afterHistory(false, 7), 'done');
});
