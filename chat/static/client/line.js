// What the client knows of one conversation: the last seq shown, and what came early.

/**
 * @typedef {object} Message a stored message as the server sends it
 * @property {string} conversation_id
 * @property {number} seq
 * @property {string} [body]
 * @property {string} [client_msg_id]
 * @property {string} [sent_at]
 * @property {{role?: string, name?: string}} [sender]
 */

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
}
