// The chat frames every page with ChatViews handles the same way: each frame for a
// conversation goes to that conversation's view (member: one; specialist: one per tab).

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */
/** @typedef {import('../client/line.js').Message} Message */
/** @typedef {import('./chat-view.js').ChatView} ChatView */

/**
 * @param {PeerChatClient} client
 * @param {(conversationId: string) => ChatView | null | undefined} viewFor the view showing
 *   that conversation on this page, if any
 * @param {{onMessage?: (view: ChatView, message: Message) => void}} [hooks] onMessage runs
 *   after the view has added a message (the specialist page counts unread messages there)
 */
export function wireChatViews(client, viewFor, { onMessage } = {}) {
  client.on('message', (/** @type {Message} */ m) => {
    const view = viewFor(m.conversation_id);
    if (!view) return;
    view.addMessage(m);
    if (onMessage) onMessage(view, m);
  });
  client.on('ack', (f) => viewFor(f.conversation_id)?.acked(f));
  client.on('send_failed', (f) => viewFor(f.conversation_id)?.sendFailed(f));
  client.on('typing', (f) => viewFor(f.conversation_id)?.peerTyping());
  client.on('read', (f) => viewFor(f.conversation_id)?.peerRead(f.seq));
  client.on('peer_status', (f) => viewFor(f.conversation_id)?.peerStatus(f.status));
  client.on('conversation_ended', (f) => viewFor(f.conversation_id)?.ended(f));
}
