// Member page, a conversation handed on (PRODUCT.md §9): `transfer` frames become calm
// lines in the chat. `waiting`: they are being connected to another peer and can keep
// writing (everything is kept for them). `joined`: "Ana has handed your conversation to
// Ben, who can see what you've written so far", and the chat names Ben from then on.

import { bidi } from '../ui/dom.js';
import { t, tParts } from '../ui/i18n.js';

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */
/** @typedef {import('../ui/chat-view.js').ChatView} ChatView */

/**
 * @param {PeerChatClient} client
 * @param {{viewFor: (conversationId: string) => ChatView | null, notice: (...parts: (Node | string)[]) => void}} hooks
 */
export function handedOnPanel(client, { viewFor, notice }) {
  client.on('transfer', (f) => {
    const view = viewFor(f.conversation_id);
    if (!view || view.isEnded) return;
    const from = bidi(view.peerName);
    if (f.state === 'waiting') {
      view.serviceLine(tParts('member.handed_on_waiting', { from }));
      notice(t('member.handed_on_waiting_short'));
      return;
    }
    const name = f.specialist && f.specialist.name;
    if (!name) return;
    view.serviceLine(tParts('member.handed_on_joined', { from, to: bidi(name) }), name);
    notice(...tParts('member.handed_on_joined_short', { name: bidi(name) }));
  });
}
