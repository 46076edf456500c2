// Supervisor page, the specialist roster: GET /api/specialists (every 30 s, when the counts
// or the active conversations in queue_stats change, on every transfer_status, or on
// Refresh) with each one's live state (available / busy / away / offline) and load (active
// chats of max); "Set away" (end of shift) → PUT /api/specialists/{id}/status; the edit form
// → PUT /api/specialists/{id}.

import { $, bidi, h, show } from '../ui/dom.js';
import { formatTime } from '../ui/format.js';
import { t, tParts } from '../ui/i18n.js';

const REFRESH_MS = 30000;
const SOON_MS = 500;

const STATUS_TEXT = /** @type {Record<string, string>} */ ({
  available: 'sup.state.available',
  busy: 'sup.state.busy',
  away: 'sup.state.away',
  offline: 'sup.state.offline',
});

/**
 * @param {(path: string, options?: import('../client/http.js').ApiOptions) => Promise<any>} call
 * @param {(...parts: (Node | string)[]) => void} notice
 * @param {(list: any[]) => void} [loaded] each time the roster loads
 */
export function specialistsPanel(call, notice, loaded = () => {}) {
  const body = $('#specialists');
  const form = $('#specialist-form');
  const error = $('#edit-error');
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  /** @type {any} the specialist being edited */
  let editing = null;
  /** @type {HTMLElement | null} */
  let editOpener = null;
  let lastCounts = '';
  const input = (/** @type {string} */ sel) => /** @type {HTMLInputElement} */ ($(sel));
  const splitList = (/** @type {string} */ text) => text.split(',').map((w) => w.trim()).filter(Boolean);

  // Loads may answer out of order (a timer's, then one for a hand-over): only the latest renders.
  let generation = 0;

  async function load() {
    clearTimeout(timer);
    const mine = ++generation;
    const listError = $('#specialists-error');
    try {
      const list = await call('/api/specialists');
      if (mine !== generation) return; // a newer load is on its way: its answer is current
      listError.textContent = '';
      render(Array.isArray(list) ? list : []);
      loaded(Array.isArray(list) ? list : []);
    } catch (err) {
      listError.textContent = t('sup.specialists_load_failed', { error: /** @type {Error} */ (err).message });
    }
    if (mine === generation) timer = setTimeout(load, REFRESH_MS);
  }

  // Coalesced: a burst of changes (a hand-over is two or three frames) is one load.
  function soon() {
    clearTimeout(timer);
    timer = setTimeout(load, SOON_MS);
  }

  // The rows stay the same elements from one load to the next (keyed by specialist id), and a
  // load that changes nothing renders nothing. The roster reloads whenever loads move (every
  // start, end and hand-over on a busy service): rebuilding the rows each time replaced the
  // buttons under the supervisor's pointer, and a click whose press and release met two
  // different buttons was lost (the edit form never opened). So a row's cells are replaced
  // but its actions cell is never taken out of the page, and a row moves only when the order
  // changed (a node taken out, even to be put back at once, loses a press in progress).
  /** @type {Map<string, {row: HTMLElement, edit: HTMLElement, away: HTMLElement | null, actions: HTMLElement, sp: any}>} */
  const rows = new Map();
  let rendered = '';

  /** @param {any[]} list */
  function render(list) {
    list.sort((a, b) => String(a.name).localeCompare(String(b.name)));
    const key = JSON.stringify(list);
    if (key === rendered) return;
    rendered = key;
    const focused = /** @type {HTMLElement | null} */ (document.activeElement);
    const ours = focused !== null && body.contains(focused);
    const listed = new Set(list.map((sp) => String(sp.id)));
    for (const id of [...rows.keys()]) {
      if (!listed.has(id)) rows.delete(id);
    }
    const managed = new Set([...rows.values()].map((r) => r.row));
    for (const child of [...body.children]) {
      if (!managed.has(/** @type {HTMLElement} */ (child))) child.remove();
    }
    list.forEach((sp, i) => {
      const id = String(sp.id);
      const state = String(sp.status || 'offline');
      let r = rows.get(id);
      if (!r) {
        const edit = h('button', { type: 'button', testid: 'edit-specialist', dataset: { specialistId: id, act: 'edit' } }, t('sup.edit'));
        edit.addEventListener('click', () => open(/** @type {any} */ (rows.get(id)).sp, edit));
        const actions = h('td', { class: 'actions' });
        const row = h('tr', { testid: 'specialist-row', dataset: { specialistId: id } }, h('th'), h('td'), h('td'), h('td'), h('td'), actions);
        r = { row, edit, away: null, actions, sp };
        rows.set(id, r);
      }
      r.sp = sp;
      r.edit.setAttribute('aria-label', t('sup.edit_name', { name: sp.name }));
      // Only someone on shift can be taken off it.
      const onShift = state === 'available' || state === 'busy';
      if (onShift && !r.away) {
        const away = h('button', { type: 'button', testid: 'set-away', dataset: { specialistId: id, act: 'away' } }, t('sup.set_away_button'));
        away.addEventListener('click', () => setAway(/** @type {any} */ (rows.get(id)).sp));
        r.away = away;
        if (r.actions.contains(r.edit)) r.actions.insertBefore(away, r.edit);
        else r.actions.append(away, r.edit);
        r.actions.insertBefore(document.createTextNode(' '), r.edit);
      } else if (!onShift && (r.away || !r.actions.contains(r.edit))) {
        const hadFocus = r.away !== null && focused === r.away;
        r.away = null;
        if (r.actions.contains(r.edit)) {
          for (const node of [...r.actions.childNodes]) if (node !== r.edit) node.remove();
        } else r.actions.append(r.edit);
        if (hadFocus) r.edit.focus();
      }
      if (r.away) r.away.setAttribute('aria-label', t('sup.set_away_name', { name: sp.name }));
      r.row.dataset.status = state;
      const cells = [
        h('th', { scope: 'row', dir: 'auto' }, String(sp.name || sp.id)),
        h(
          'td',
          { testid: 'specialist-status' },
          h('span', { class: ['status-pill', `status-${state}`] }, STATUS_TEXT[state] ? t(STATUS_TEXT[state]) : state),
          sp.wrap_up_until
            ? [' ', h('span', { class: 'status-pill status-wrap-up', testid: 'specialist-wrap-up' }, t('sup.state.wrap_up', { time: formatTime(sp.wrap_up_until) }))]
            : null,
        ),
        h('td', { testid: 'specialist-load' }, `${sp.active_chats ?? 0} / ${sp.max_chats ?? '–'}`),
        h('td', {}, (sp.tags || []).join(', ') || '–'),
        h('td', {}, (sp.languages || []).join(', ') || '–'),
      ];
      cells.forEach((cell, k) => r.row.replaceChild(cell, r.row.children[k]));
      const at = body.children[i];
      if (at !== r.row) body.insertBefore(r.row, at ?? null);
    });
    if (ours && !body.contains(focused)) $('#specialists-heading').focus(); // their row went
  }

  /** @param {any} sp */
  async function setAway(sp) {
    try {
      await call(`/api/specialists/${encodeURIComponent(sp.id)}/status`, { method: 'PUT', body: { status: 'away' } });
      notice(...tParts('sup.now_away', { name: bidi(sp.name || sp.id) }));
    } catch (err) {
      $('#specialists-error').textContent = t('sup.set_away_failed', { error: /** @type {Error} */ (err).message });
    }
    await load();
  }

  /**
   * @param {any} sp
   * @param {HTMLElement} opener
   */
  function open(sp, opener) {
    editing = sp;
    editOpener = opener;
    $('#edit-id').textContent = sp.id;
    $('#edit-heading').replaceChildren(...tParts('sup.edit_heading', { name: bidi(sp.name || sp.id) }));
    input('#edit-name').value = sp.name || '';
    input('#edit-tags').value = (sp.tags || []).join(', ');
    input('#edit-languages').value = (sp.languages || []).join(', ');
    input('#edit-max').value = String(sp.max_chats ?? 3);
    error.textContent = '';
    show(form, true);
    input('#edit-name').focus();
  }

  function close() {
    show(form, false);
    const id = editing && editing.id;
    editing = null;
    const again = id && /** @type {HTMLElement | null} */ (body.querySelector(`button[data-specialist-id="${CSS.escape(id)}"]`));
    (again || editOpener || $('#specialists-heading')).focus();
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!editing) return;
    const changes = {
      name: input('#edit-name').value.trim(),
      tags: splitList(input('#edit-tags').value),
      languages: splitList(input('#edit-languages').value),
      max_chats: Number(input('#edit-max').value),
    };
    if (!changes.name) return void (error.textContent = t('sup.name_required'));
    if (!changes.languages.length) return void (error.textContent = t('sup.language_required'));
    if (!Number.isInteger(changes.max_chats) || changes.max_chats < 1 || changes.max_chats > 20) {
      return void (error.textContent = t('sup.max_chats_range'));
    }
    try {
      await call(`/api/specialists/${encodeURIComponent(editing.id)}`, { method: 'PUT', body: changes });
      notice(...tParts('sup.saved', { name: bidi(changes.name) }));
      await load();
      close();
    } catch (err) {
      error.textContent = t('sup.save_failed', { error: /** @type {Error} */ (err).message });
    }
  });
  $('#edit-cancel').addEventListener('click', close);
  form.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') close();
  });
  $('#specialists-refresh').addEventListener('click', load);

  return {
    load,
    /**
     * A conversation that starts or ends moves someone's load without always changing the
     * counts (one chat of three is still available): both are watched.
     * @param {unknown} counts queue_stats.specialists
     * @param {unknown} active queue_stats.active_conversations
     */
    countsChanged(counts, active) {
      const key = JSON.stringify([counts, active]);
      if (key === lastCounts) return;
      lastCounts = key;
      soon();
    },
    /** A hand-over (transfer_status) moves a conversation from one load to another and
     * changes neither the counts nor the active conversations: reload soon. */
    handedOver: soon,
  };
}
