// Specialist page, per chat (PRODUCT.md §9): staff notes (never shown to the member: `note`,
// `notes`, `note_saved` from this specialist's other devices and supervisors) and "Block
// this member" with a reason, optionally ending the chat.

import { formatDateTime } from '../ui/format.js';
import { bidi, h } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */
/** @typedef {ReturnType<typeof import('./chats.js').chatsPanel>} Chats */
/** @typedef {{id: string, author?: {role?: string, name?: string}, body?: string, at?: string}} StaffNote */

/**
 * @param {PeerChatClient} client
 * @param {Chats} chats
 * @param {{notice: (text: string) => void}} hooks
 */
export function notesPanel(client, chats, { notice }) {
  /** @type {Map<string, {list: HTMLElement, seen: Set<string>}>} conversation_id -> its notes */
  const boxes = new Map();

  /**
   * @param {{list: HTMLElement, seen: Set<string>}} into
   * @param {StaffNote} n
   */
  function add(into, n) {
    if (!n || into.seen.has(n.id)) return;
    into.seen.add(n.id);
    const name = (n.author && n.author.name) || t('notes.staff');
    const who = n.author && n.author.role === 'supervisor' ? t('notes.by_supervisor', { name }) : name;
    into.list.append(
      h(
        'li',
        { class: 'staff-note', testid: 'staff-note' },
        h('strong', { dir: 'auto' }, who),
        ' · ',
        h('time', { datetime: n.at || '' }, formatDateTime(n.at)),
        h('p', { class: 'note-body', testid: 'staff-note-body' }, bidi(n.body || '')),
      ),
    );
  }

  /** @param {string} id */
  function box(id) {
    const known = boxes.get(id);
    if (known) return known;
    const chat = chats.chats.get(id);
    if (!chat) return null;
    const list = h('ul', { class: 'staff-notes', testid: 'staff-notes', 'aria-label': t('notes.list') });
    const input = /** @type {HTMLTextAreaElement} */ (
      h('textarea', { rows: 2, maxlength: 4000, dir: 'auto', testid: 'note-input', 'aria-label': t('notes.new') })
    );
    const save = h('button', { type: 'button', class: 'secondary', testid: 'note-save' }, t('notes.save'));
    save.addEventListener('click', () => {
      const body = input.value.trim();
      if (body && client.send({ type: 'note', conversation_id: id, body })) input.value = '';
    });
    const notes = h(
      'details',
      { class: 'notes-panel', testid: 'notes-panel' },
      h('summary', {}, t('notes.summary')),
      list,
      input,
      ' ',
      save,
    );
    const reason = /** @type {HTMLInputElement} */ (
      h('input', { type: 'text', maxlength: 500, testid: 'block-reason', 'aria-label': t('block.reason'), placeholder: t('block.reason') })
    );
    const alsoEnd = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', testid: 'block-end', checked: true }));
    const blockButton = h('button', { type: 'button', class: 'danger', testid: 'block-button' }, t('block.button'));
    blockButton.addEventListener('click', () => {
      client.send({ type: 'block', conversation_id: id, reason: reason.value.trim(), end: alsoEnd.checked });
    });
    const block = h(
      'details',
      { class: 'block-panel', testid: 'block-panel' },
      h('summary', {}, t('block.button')),
      h('p', { class: 'hint' }, t('block.hint')),
      reason,
      ' ',
      h('label', {}, alsoEnd, ' ', t('block.end_too')),
      ' ',
      blockButton,
    );
    chat.view.root.append(h('section', { class: 'staff-tools', 'aria-label': t('notes.tools') }, notes, block));
    const made = { list, seen: new Set() };
    boxes.set(id, made);
    client.send({ type: 'notes', conversation_id: id });
    return made;
  }

  const attachAll = () => {
    for (const id of chats.chats.keys()) box(id);
  };
  client.on('welcome', attachAll);
  client.on('conversation_started', attachAll);
  client.on('notes', (f) => {
    const b = box(f.conversation_id);
    if (b) for (const n of f.notes || []) add(b, n);
  });
  client.on('note_saved', (f) => {
    const b = box(f.conversation_id);
    if (b) add(b, f.note);
  });
  client.on('blocked', (f) => notice(t('block.done', { until: formatDateTime(f.until) })));
}
