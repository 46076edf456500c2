// Specialist page, wrap-up (docs/safety.md, PRODUCT.md §8): when a chat ends, a form in its
// panel records the outcome, a risk level and a note (`wrap_up` → `wrap_up_saved`), with a
// countdown to `wrap_up_until` (no offers, no claims until then). After an urgent or
// high-risk chat the first half cannot be ended early; the form says so plainly.

import { h, show } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */
/** @typedef {ReturnType<typeof import('./chats.js').chatsPanel>} Chats */

const LEVELS = ['none', 'low', 'medium', 'high'];

/**
 * @param {PeerChatClient} client
 * @param {Chats} chats
 * @param {{notice: (text: string) => void}} hooks
 */
export function wrapUpPanel(client, chats, { notice }) {
  /** When the current wrap-up ends (ms since the epoch), 0 when none. */
  let until = 0;
  /** @type {Map<string, {root: HTMLElement, countdown: HTMLElement, held: HTMLElement, saved: HTMLElement, save: HTMLButtonElement}>} */
  const forms = new Map();

  /** @param {string | null | undefined} iso */
  function setUntil(iso) {
    until = iso ? Date.parse(iso) || 0 : 0;
    tick();
  }

  /** @param {string} id */
  function form(id) {
    const known = forms.get(id);
    if (known) return known;
    const chat = chats.chats.get(id);
    if (!chat) return null;
    const n = forms.size + chats.chats.size;
    const outcomeId = `wrap-outcome-${n}`;
    const levelId = `wrap-level-${n}`;
    const noteId = `wrap-note-${n}`;
    const outcome = h('input', { id: outcomeId, type: 'text', required: true, maxlength: 200, testid: 'wrap-outcome' });
    const level = h(
      'select',
      { id: levelId, testid: 'wrap-level' },
      LEVELS.map((v) => h('option', { value: v }, t(`wrap.level_${v}`))),
    );
    const note = h('textarea', { id: noteId, maxlength: 2000, rows: 2, testid: 'wrap-note' });
    const save = h('button', { type: 'submit', class: 'primary', testid: 'wrap-save' }, t('wrap.save'));
    const countdown = h('p', { class: 'countdown', role: 'timer', testid: 'wrap-countdown' });
    const held = h('p', { class: 'hint', testid: 'wrap-held', hidden: true });
    const saved = h('p', { class: 'hint', testid: 'wrap-saved', role: 'status', hidden: true });
    const root = h(
      'form',
      { class: 'wrap-up card', testid: 'wrap-up', 'aria-label': t('wrap.heading') },
      h('h3', {}, t('wrap.heading')),
      countdown,
      h('p', {}, h('label', { for: outcomeId }, t('wrap.outcome')), h('br'), outcome),
      h('p', {}, h('label', { for: levelId }, t('wrap.risk_level')), ' ', level),
      h('p', {}, h('label', { for: noteId }, t('wrap.note')), h('br'), note),
      h('div', { class: 'button-row' }, save),
      saved,
      held,
    );
    root.addEventListener('submit', (e) => {
      e.preventDefault();
      const text = /** @type {HTMLInputElement} */ (outcome).value.trim();
      if (!text) {
        notice(t('wrap.outcome_needed'));
        /** @type {HTMLInputElement} */ (outcome).focus();
        return;
      }
      /** @type {any} */
      const frame = { type: 'wrap_up', conversation_id: id, outcome: text, risk_level: /** @type {HTMLSelectElement} */ (level).value };
      const body = /** @type {HTMLTextAreaElement} */ (note).value.trim();
      if (body) frame.note = body;
      if (!client.send(frame)) notice(t('common.not_connected'));
    });
    chat.view.root.append(root);
    const made = { root, countdown, held, saved, save };
    forms.set(id, made);
    tick();
    return made;
  }

  function tick() {
    const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    for (const f of forms.values()) {
      f.countdown.textContent = left ? t('wrap.countdown', { n: left }) : t('wrap.over');
      if (!left) show(f.held, false);
    }
  }

  client.on('welcome', (w) => setUntil(w.wrap_up_until));
  client.on('availability', (f) => setUntil(f.wrap_up_until));
  // Focus stays where it is: the specialist may be typing in another chat.
  client.on('conversation_ended', (f) => form(f.conversation_id));
  client.on('wrap_up_saved', (f) => {
    setUntil(f.wrap_up_until);
    const made = forms.get(f.conversation_id);
    const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    const text = left ? t('wrap.saved_held', { n: left }) : t('wrap.saved');
    notice(text);
    if (!made) return;
    made.saved.textContent = t('wrap.saved');
    show(made.saved, true);
    made.held.textContent = left ? t('wrap.held', { n: left }) : '';
    show(made.held, Boolean(left));
  });
  // A refused `wrap_up` (not_found, invalid_state) is told by the page's error handler.

  return { tickAll: tick };
}
