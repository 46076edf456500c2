// Member page, a conversation handed on (PRODUCT.md §9): `transfer` frames become calm
// lines in the chat. `waiting`: they are being connected to another peer and can keep
// writing (everything is kept for them). `joined`: "Ana has handed your conversation to
// Ben, who can see what you've written so far", and the chat names Ben from then on.
// After a reload during a cold wait, `welcome` shows the conversation with `transfer`
// `waiting` and no peer: the same calm line, without the name of who handed it on.

import { bidi } from '../ui/dom.js';
import { t, tParts } from '../ui/i18n.js';

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */
/** @typedef {import('../ui/chat-view.js').ChatView} ChatView */

/**
 * @param {PeerChatClient} client
 * @param {{viewFor: (conversationId: string) => ChatView | null, notice: (...parts: (Node | string)[]) => void}} hooks
 */
export function handedOnPanel(client, { viewFor, notice }) {
  /** @type {Map<string, string>} conversation_id -> who handed it on, while nobody has it */
  const handedFrom = new Map();

  client.on('welcome', (w) => {
    for (const c of w.conversations || []) {
      const view = viewFor(c.id);
      if (!view || view.isEnded || c.transfer?.state !== 'waiting' || handedFrom.has(c.id)) continue;
      handedFrom.set(c.id, ''); // who handed it on is not known after a reload
      view.serviceLine([t('member.handed_on_waiting_again')], t('member.next_peer'));
    }
  });

  client.on('transfer', (f) => {
    const view = viewFor(f.conversation_id);
    if (!view || view.isEnded) return;
    const fromName = handedFrom.get(f.conversation_id) ?? view.peerName;
    const from = bidi(fromName);
    if (f.state === 'waiting') {
      // Nobody has it until someone takes it: the chat names "your next peer" meanwhile.
      handedFrom.set(f.conversation_id, fromName);
      view.serviceLine(tParts('member.handed_on_waiting', { from }), t('member.next_peer'));
      notice(t('member.handed_on_waiting_short'));
      return;
    }
    const name = f.specialist && f.specialist.name;
    if (!name) return;
    handedFrom.delete(f.conversation_id);
    const line = fromName
      ? tParts('member.handed_on_joined', { from, to: bidi(name) })
      : tParts('member.handed_on_joined_again', { to: bidi(name) });
    view.serviceLine(line, name);
    notice(...tParts('member.handed_on_joined_short', { name: bidi(name) }));
  });
}
