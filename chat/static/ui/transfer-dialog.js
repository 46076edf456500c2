// The transfer dialog (PRODUCT.md §9), one per page, shared by the specialist console and
// the supervisor dashboard: who may take the conversation (GET
// /api/conversations/{id}/transfer-targets: online, speaking its language, with a free slot,
// not in wrap-up, not barred from the member; best fit first) or "Back to the queue", and a
// handoff note for staff only → `transfer`. A modal <dialog>: Escape or Cancel backs out.

import { bidi, clear, h, show } from './dom.js';
import { t, tParts } from './i18n.js';

/** @typedef {{id: string, name: string, languages?: string[], tags?: string[], active?: number, max_chats?: number, status?: string}} Target */
/** @typedef {{conversationId: string, to: Target | null, note: string}} Handoff */

/**
 * @param {{call: (path: string) => Promise<any>, send: (frame: import('../client/socket.js').Frame) => boolean,
 *   onSent: (handoff: Handoff) => void}} hooks call: HTTP GET with the page's token;
 *   send: the page's socket; onSent: a `transfer` went out
 */
export function transferDialog({ call, send, onSent }) {
  const about = h('p', { class: 'hint', testid: 'transfer-about' });
  const list = h('ul', { class: 'transfer-targets', testid: 'transfer-targets' });
  const listStatus = h('p', { class: 'hint', role: 'status', testid: 'transfer-targets-status' });
  const queue = /** @type {HTMLInputElement} */ (h('input', { type: 'radio', name: 'transfer-to', value: '', id: 'transfer-queue', testid: 'transfer-queue' }));
  const note = /** @type {HTMLTextAreaElement} */ (
    h('textarea', { id: 'transfer-note', rows: 3, maxlength: 4000, dir: 'auto', testid: 'transfer-note', 'aria-describedby': 'transfer-note-hint' })
  );
  const error = h('p', { class: 'form-error', role: 'alert', testid: 'transfer-error' });
  const cancel = h('button', { type: 'button', testid: 'transfer-cancel' }, t('transfer.cancel'));
  const form = /** @type {HTMLFormElement} */ (
    h(
      'form',
      { method: 'dialog', testid: 'transfer-form' },
      h(
        'fieldset',
        { class: 'transfer-choice' },
        h('legend', {}, t('transfer.who')),
        listStatus,
        list,
        h('p', { class: 'transfer-queue' }, queue, ' ', h('label', { for: 'transfer-queue' }, t('transfer.queue'))),
      ),
      h('p', {}, h('label', { for: 'transfer-note' }, t('transfer.note')), h('br'), note),
      h('p', { id: 'transfer-note-hint', class: 'hint' }, t('transfer.note_hint')),
      error,
      h('div', { class: 'button-row' }, h('button', { type: 'submit', class: 'primary', testid: 'transfer-send' }, t('transfer.send')), cancel),
    )
  );
  const dialog = /** @type {HTMLDialogElement} */ (
    h(
      'dialog',
      { class: 'confirm-dialog transfer-dialog', testid: 'transfer-dialog', 'aria-labelledby': 'transfer-heading' },
      h('h2', { id: 'transfer-heading' }, t('transfer.heading')),
      about,
      h('p', { class: 'hint' }, t('transfer.intro')),
      form,
    )
  );
  document.body.append(dialog);
  /** @type {string | null} */
  let conversationId = null;
  /** @type {Map<string, Target>} */
  let targets = new Map();

  /** @param {Target} target @param {number} i */
  function option(target, i) {
    const id = `transfer-to-${i}`;
    const facts = [
      (target.languages || []).join(', '),
      target.tags && target.tags.length ? target.tags.join(', ') : '',
      t('transfer.load', { active: target.active ?? 0, max: target.max_chats ?? 0 }),
      target.status === 'available' ? t('spec.available') : target.status === 'away' ? t('spec.away') : target.status || '',
    ].filter(Boolean);
    return h(
      'li',
      {},
      h('input', { type: 'radio', name: 'transfer-to', value: target.id, id, testid: 'transfer-target', dataset: { specialistId: target.id } }),
      ' ',
      h('label', { for: id }, h('strong', {}, bidi(target.name || target.id)), h('span', { class: 'hint' }, ` · ${facts.join(' · ')}`)),
    );
  }

  /** @param {string} id */
  async function load(id) {
    clear(list);
    listStatus.textContent = t('transfer.loading');
    try {
      const data = await call(`/api/conversations/${encodeURIComponent(id)}/transfer-targets`);
      if (conversationId !== id) return;
      const found = /** @type {Target[]} */ (data && Array.isArray(data.specialists) ? data.specialists : []);
      targets = new Map(found.map((x) => [x.id, x]));
      list.append(...found.map(option));
      listStatus.textContent = found.length ? '' : t('transfer.none');
      if (!found.length) queue.checked = true;
    } catch (err) {
      if (conversationId === id) listStatus.textContent = t('transfer.load_failed', { error: /** @type {Error} */ (err).message });
      queue.checked = true;
    }
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const chosen = /** @type {HTMLInputElement | null} */ (form.querySelector('input[name="transfer-to"]:checked'));
    if (!conversationId) return;
    if (!chosen) {
      error.textContent = t('transfer.choose');
      return;
    }
    const to = chosen.value ? targets.get(chosen.value) || { id: chosen.value, name: chosen.value } : null;
    const text = note.value.trim();
    /** @type {import('../client/socket.js').Frame} */
    const frame = { type: 'transfer', conversation_id: conversationId, note: text };
    if (to) frame.to_specialist = to.id;
    if (!send(frame)) {
      error.textContent = t('common.not_connected_retry');
      return;
    }
    onSent({ conversationId, to, note: text });
    dialog.close();
  });
  cancel.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => {
    conversationId = null;
  });

  return {
    /**
     * @param {string} id the conversation to hand on
     * @param {(Node | string)[]} [what] a line saying which conversation it is
     */
    open(id, what = []) {
      conversationId = id;
      form.reset();
      error.textContent = '';
      about.replaceChildren(...what);
      show(about, what.length > 0);
      dialog.showModal();
      note.focus();
      load(id);
    },
    /** The sentence naming a conversation, for open(): "Sam's conversation with Ana". */
    /** @param {string} member @param {string} specialist */
    describe: (member, specialist) => tParts('transfer.about', { member: bidi(member), specialist: bidi(specialist) }),
  };
}
