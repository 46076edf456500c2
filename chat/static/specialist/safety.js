// Specialist page, safety inside a conversation (docs/safety.md): a risk mark on a chat whose
// member used a risk phrase, who is watching, supervisors' whispers (shown apart from the
// chat, never sendable to the member), and a "Flag for support" control per chat.

import { bidi, h, show } from '../ui/dom.js';

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */
/** @typedef {ReturnType<typeof import('./chats.js').chatsPanel>} Chats */

/**
 * @param {PeerChatClient} client
 * @param {Chats} chats
 * @param {{notice: (text: string) => void, shout: (text: string) => void}} hooks
 */
export function safetyPanel(client, chats, { notice, shout }) {
  /** @type {Map<string, {watching: HTMLElement, whispers: HTMLElement}>} conversation_id -> its safety bar */
  const bars = new Map();

  /** @param {string} id */
  function bar(id) {
    const known = bars.get(id);
    if (known) return known;
    const chat = chats.chats.get(id);
    if (!chat) return null;
    const watching = h('p', { class: 'watching hint', testid: 'watching', hidden: true }, 'A supervisor is watching this chat.');
    const whispers = h('ul', { class: 'whispers', testid: 'whispers', 'aria-label': 'Whispers from supervisors' });
    const level = h(
      'select',
      { testid: 'flag-level', 'aria-label': 'How serious' },
      h('option', { value: 'concern' }, 'Concern'),
      h('option', { value: 'high' }, 'High risk'),
    );
    const note = h('input', { type: 'text', testid: 'flag-note', maxlength: 1000, 'aria-label': 'Note for supervisors (optional)', placeholder: 'Note for supervisors (optional)' });
    const button = h('button', { type: 'button', class: 'secondary', testid: 'flag-button' }, 'Flag for support');
    button.addEventListener('click', () => {
      const text = /** @type {HTMLInputElement} */ (note).value.trim();
      /** @type {any} */
      const frame = { type: 'flag', conversation_id: id, level: /** @type {HTMLSelectElement} */ (level).value };
      if (text) frame.note = text;
      client.send(frame);
      /** @type {HTMLInputElement} */ (note).value = '';
    });
    const flag = h('div', { class: 'flag-control', testid: 'flag-control' }, level, ' ', note, ' ', button);
    const root = h('section', { class: 'safety-bar', 'aria-label': 'Safety' }, watching, whispers, flag);
    chat.view.root.prepend(root);
    const made = { watching, whispers };
    bars.set(id, made);
    return made;
  }

  const attachAll = () => {
    for (const id of chats.chats.keys()) bar(id);
  };
  client.on('welcome', attachAll);
  client.on('conversation_started', attachAll);

  client.on('risk', (f) => {
    const chat = chats.chats.get(f.conversation_id);
    if (!chat) return;
    chat.button.classList.add('at-risk');
    // Beside the tab's button (not in it, whose accessible name is kept by chats.js).
    if (!chat.tab.querySelector('.risk-mark')) chat.tab.append(h('span', { class: 'risk-mark', testid: 'risk-mark' }, 'risk'));
    shout(`Risk words in the chat with ${chat.name}. Supervisors were alerted.`);
  });
  client.on('monitoring', (f) => {
    const b = bar(f.conversation_id);
    if (b) show(b.watching, Boolean(f.watching));
  });
  client.on('whisper', (f) => {
    const b = bar(f.conversation_id);
    if (!b) return;
    const from = (f.from && f.from.name) || 'A supervisor';
    b.whispers.append(h('li', { class: 'whisper', testid: 'whisper' }, h('strong', {}, `Whisper from ${from}: `), bidi(f.body || '')));
    shout(`Whisper from ${from}.`);
  });
  client.on('flagged', () => notice('Supervisors were alerted.'));
}
