// Specialist page, handing a conversation on (PRODUCT.md §9). Each chat gets "Hand on…"
// beside "End chat", which opens the transfer dialog (ui/transfer-dialog.js). While a warm
// transfer waits the chat says so; `transfer_failed` says calmly that the conversation is
// still theirs and offers "Back to the queue instead" (a cold transfer with the same note).
// The end (`conversation_ended`, reason `transferred`) closes the chat as any end does, and
// wrap-up starts (specialist/wrapup.js). A conversation this specialist receives by
// transfer shows who handed it on and their note above its history. A warm transfer still
// waiting for an answer is shown again after a reload (`welcome`'s `conversations[].transfer`),
// and one a supervisor asked for is shown as it begins (`transfer_status`).

import { bidi, h, show } from '../ui/dom.js';
import { t, tParts } from '../ui/i18n.js';
import { transferDialog } from '../ui/transfer-dialog.js';

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */
/** @typedef {ReturnType<typeof import('./chats.js').chatsPanel>} Chats */
/** @typedef {import('./chats.js').Chat} Chat */
/** @typedef {import('../ui/transfer-dialog.js').Handoff} Handoff */

const FAILED = {
  declined: 'transfer.failed_declined',
  expired: 'transfer.failed_expired',
  unavailable: 'transfer.failed_unavailable',
};

/**
 * @param {PeerChatClient} client
 * @param {Chats} chats
 * @param {{call: (path: string) => Promise<any>, notice: (...parts: (Node | string)[]) => void}} hooks
 */
export function transferPanel(client, chats, { call, notice }) {
  /** @type {Map<string, {status: HTMLElement, open: HTMLButtonElement, cold: HTMLButtonElement}>} */
  const bars = new Map();
  /** @type {Map<string, Handoff>} conversation_id -> the transfer asked for, until it ends or fails */
  const asked = new Map();

  const dialog = transferDialog({
    call,
    send: (frame) => Boolean(client.send(frame)),
    onSent: (handoff) => {
      asked.set(handoff.conversationId, handoff);
      const bar = bars.get(handoff.conversationId);
      if (!bar) return;
      show(bar.cold, false);
      bar.open.disabled = true;
      bar.status.textContent = t('transfer.asking');
    },
  });

  /** @param {Chat} chat */
  function attach(chat) {
    if (bars.has(chat.id) || chat.view.isEnded) return;
    const open = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'secondary', testid: 'transfer-open' }, t('transfer.open')));
    const cold = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', testid: 'transfer-cold', hidden: true }, t('transfer.cold')));
    const status = h('p', { class: 'transfer-state', role: 'status', testid: 'transfer-state' });
    open.addEventListener('click', () => dialog.open(chat.id, [t('transfer.about_chat', { member: chat.name })]));
    cold.addEventListener('click', () => {
      const before = asked.get(chat.id);
      const note = before ? before.note : '';
      if (!client.send({ type: 'transfer', conversation_id: chat.id, note })) return notice(t('common.not_connected'));
      asked.set(chat.id, { conversationId: chat.id, to: null, note });
      show(cold, false);
      open.disabled = true;
      status.textContent = t('transfer.asking');
    });
    chat.view.ui.endButton.before(open, ' ');
    chat.view.ui.peerStatusEl.before(h('div', { class: 'transfer-bar' }, status, cold));
    bars.set(chat.id, { status, open, cold });
  }

  const attachAll = () => {
    for (const chat of chats.chats.values()) attach(chat);
  };
  // After a reload (or a reconnect), `welcome` says which warm transfers still wait for an
  // answer, whoever asked (this page, another device, a supervisor): the chat says so again.
  // One that ended while we were away is no longer listed: "Hand on…" works again.
  /**
   * A warm transfer of this chat waits for `to` to accept: the chat says so.
   * @param {string} id
   * @param {{id: string, name: string}} to
   */
  function offered(id, to) {
    const bar = bars.get(id);
    if (!bar) return;
    const before = asked.get(id);
    asked.set(id, { conversationId: id, to, note: before ? before.note : '' });
    show(bar.cold, false);
    bar.open.disabled = true;
    bar.status.replaceChildren(...tParts('transfer.waiting_for', { name: bidi(to.name) }));
  }

  client.on('welcome', (w) => {
    attachAll();
    for (const c of w.conversations || []) {
      const bar = bars.get(c.id);
      if (!bar) continue;
      const to = c.transfer?.state === 'offered' ? c.transfer.to : null;
      if (to) offered(c.id, to);
      else if (asked.get(c.id)?.to) {
        asked.delete(c.id);
        bar.open.disabled = false;
        bar.status.textContent = '';
      }
    }
  });
  client.on('conversation_started', (f) => {
    attachAll();
    const chat = chats.chats.get(f.conversation.id);
    if (!chat || !f.transfer || chat.view.root.querySelector('[data-testid="handoff"]')) return;
    const from = (f.transfer.from && f.transfer.from.name) || t('chat.peer');
    chat.view.list.before(
      h(
        'div',
        { class: 'handoff', testid: 'handoff', role: 'note' },
        h('p', { testid: 'handoff-from' }, ...tParts('transfer.handed_to_you', { name: bidi(from) })),
        f.transfer.note ? h('p', { class: 'handoff-note', dir: 'auto', testid: 'handoff-note' }, f.transfer.note) : null,
      ),
    );
  });

  // A supervisor offered one of our chats to a colleague: it stays ours until they accept.
  client.on('transfer_status', (f) => {
    if (f.transfer?.state === 'offered' && f.transfer.to) offered(f.conversation_id, f.transfer.to);
  });

  // The direct reply to our `transfer`: asked, nobody has it yet.
  client.on('transfer', (f) => {
    const handoff = asked.get(f.conversation_id);
    const bar = bars.get(f.conversation_id);
    if (!handoff || !bar || f.state !== 'waiting') return;
    if (handoff.to) bar.status.replaceChildren(...tParts('transfer.waiting_for', { name: bidi(handoff.to.name) }));
    else bar.status.textContent = t('transfer.to_queue');
  });

  client.on('transfer_failed', (f) => {
    const bar = bars.get(f.conversation_id);
    const handoff = asked.get(f.conversation_id);
    if (!bar) return;
    const name = handoff && handoff.to ? handoff.to.name : t('transfer.they');
    const text = tParts(FAILED[f.reason] || 'transfer.failed_unavailable', { name: bidi(name) });
    bar.status.replaceChildren(...text);
    bar.open.disabled = false;
    show(bar.cold, true);
    notice(...tParts(FAILED[f.reason] || 'transfer.failed_unavailable', { name: bidi(name) }));
  });

  client.on('conversation_ended', (f) => {
    const bar = bars.get(f.conversation_id);
    asked.delete(f.conversation_id);
    if (!bar) return;
    bar.status.textContent = '';
    show(bar.cold, false);
    show(bar.open, false);
  });

  return {
    /**
     * An error for our `transfer`: nothing changed, the conversation is still ours.
     * @param {{message?: string, code?: string}} e
     * @param {import('../client/socket.js').Frame} req
     */
    refused(e, req) {
      asked.delete(req.conversation_id);
      const bar = bars.get(req.conversation_id);
      const text = t('transfer.refused', { error: e.message || e.code || '' });
      if (bar) {
        bar.status.textContent = text;
        bar.open.disabled = false;
      } else notice(text);
    },
  };
}
