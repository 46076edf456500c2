// What the client knows of one conversation: the last seq shown, and what came early.

/** @typedef {import('peerchat-protocol').Message} Message a stored message (protocol/frames/conversation.py) */

export class ConversationLine {
  /** @param {number | null} last */
  constructor(last) {
    this.last = last; // highest seq handed to the page; null = not known yet (fill from 0)
    /** @type {Map<number, Message>} seq -> message frame that arrived ahead of a gap */
    this.buffer = new Map();
    this.filling = false; // a `history` query is in flight
    this.readSent = 0;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.readTimer = null;
    this.typingAt = 0;
  }

  /**
   * Where an incoming message goes: the messages now due to the page, in seq order (this one
   * and any held back that it unblocks), and whether a `history` query must fill a gap.
   * A seq at or below the last one shown is a duplicate; one beyond last + 1 is held back.
   * @param {Message} message
   * @returns {{ready: Message[], fill: boolean}}
   */
  take(message) {
    const seq = message.seq;
    if (this.last !== null && (seq <= this.last || this.buffer.has(seq))) return { ready: [], fill: false };
    if (this.last === null || seq > this.last + 1) {
      // Ahead of a gap, or we do not know where this conversation starts for us yet.
      this.buffer.set(seq, message);
      return { ready: [], fill: true };
    }
    const ready = [message];
    let next;
    while ((next = this.buffer.get(ready[ready.length - 1].seq + 1))) {
      this.buffer.delete(next.seq);
      ready.push(next);
    }
    const upTo = ready[ready.length - 1].seq;
    for (const s of this.buffer.keys()) if (s <= upTo) this.buffer.delete(s);
    return { ready, fill: false };
  }

  /**
   * After a `history` page: 'done' when nothing is held back; 'more' when another page may
   * fill the gap (this one was full, or it moved the line on); otherwise the server has
   * nothing for the gap, and rather than stall the line skips it: {from, to} is what is
   * missing and `next` the first held-back message, taken out of the buffer to hand on.
   * @param {boolean} full the page held as many messages as were asked for
   * @param {number} before the last seq shown before the page
   * @returns {'done' | 'more' | {from: number, to: number, next: Message}}
   */
  afterHistory(full, before) {
    if (this.buffer.size === 0) return 'done';
    const last = this.last ?? 0;
    if (full || last > before) return 'more';
    const seq = Math.min(...this.buffer.keys());
    const next = /** @type {Message} */ (this.buffer.get(seq));
    this.buffer.delete(seq); // held back, not a duplicate: out of the buffer before handing on
    this.last = seq - 1;
    return { from: last + 1, to: seq - 1, next };
  }
}
