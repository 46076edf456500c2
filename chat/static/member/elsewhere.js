// Member page, "Closed" and "Elsewhere": when the service is outside its opening hours
// (welcome.open false, or a request refused with closed_hours) the start screen says when
// it opens and the request button waits until then; and whenever the server sends
// `alternatives` (closed, nobody online, a long wait) they are listed, with the crisis
// resources one click away. A long wait keeps the member's place: the list only adds.

import { ErrorCode } from '../codes.js';
import { $, clear, h, show } from '../ui/dom.js';
import { language, t } from '../ui/i18n.js';

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */
/** @typedef {{name?: unknown, url?: unknown, description?: unknown}} Alternative */

/** @param {unknown} url only web links the operator configured: nothing else becomes a link */
function webUrl(url) {
  if (typeof url !== 'string') return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'https:' || parsed.protocol === 'http:' ? parsed.href : null;
  } catch {
    return null;
  }
}

/** @param {string | null | undefined} iso "Monday 08:00" in the member's own time zone */
export function formatOpening(iso) {
  const d = new Date(iso ?? '');
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleString(language(), { weekday: 'long', day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit' });
}

/** @param {PeerChatClient} client */
export function elsewherePanel(client) {
  const closed = $('#closed-panel');
  const opensAt = $('#opens-at');
  const button = /** @type {HTMLButtonElement} */ ($('#request-button'));
  const panel = $('#alternatives-panel');
  const list = $('#alternatives-list');
  const hint = $('#alternatives-hint');
  /** @type {ReturnType<typeof setTimeout> | null} */
  let reopen = null;

  /** @param {Alternative[] | null | undefined} alternatives */
  function showAlternatives(alternatives) {
    const items = Array.isArray(alternatives) ? alternatives : [];
    clear(list);
    for (const a of items) {
      if (!a || typeof a !== 'object' || !a.name) continue;
      const href = webUrl(a.url);
      const name = String(a.name);
      list.append(
        h(
          'li',
          { class: 'alternative', testid: 'alternative' },
          href
            ? h('a', { href, rel: 'noopener noreferrer', target: '_blank', dir: 'auto', testid: 'alternative-link' }, name)
            : h('strong', { dir: 'auto' }, name),
          a.description ? h('span', { class: 'hint', dir: 'auto' }, ` — ${String(a.description)}`) : null,
        ),
      );
    }
    show(panel, list.childNodes.length > 0);
  }

  /**
   * @param {boolean} isOpen
   * @param {string | null | undefined} when
   */
  function setOpen(isOpen, when) {
    if (reopen) clearTimeout(reopen);
    reopen = null;
    show(closed, !isOpen);
    button.disabled = !isOpen;
    closed.dataset.open = String(isOpen);
    hint.textContent = isOpen
      ? t('member.alternatives_waiting')
      : t('member.alternatives_closed');
    if (isOpen) return;
    const at = formatOpening(when);
    opensAt.textContent = at ? t('member.open_again_at', { when: at }) : t('member.open_again_soon');
    const wait = new Date(when ?? '').getTime() - Date.now();
    // At opening time, ask again (a reconnect brings a fresh welcome) rather than guess.
    if (Number.isFinite(wait) && wait > 0 && wait < 2 ** 31 - 1) {
      reopen = setTimeout(() => setOpen(true, undefined), wait + 1000);
    }
  }

  $('#closed-crisis').addEventListener('click', () => $('#crisis-button').click());

  client.on('welcome', (w) => {
    setOpen(w.open !== false, w.opens_at);
    showAlternatives(w.alternatives);
  });
  client.on('queued', (f) => {
    if (f.alternatives) showAlternatives(f.alternatives);
  });
  client.on('queue_update', (f) => {
    if (f.alternatives) showAlternatives(f.alternatives);
  });
  client.on('conversation_started', () => showAlternatives([]));

  return {
    /** @param {{code?: string, opens_at?: string | null, alternatives?: Alternative[] | null}} e */
    refused(e) {
      if (e.code !== ErrorCode.CLOSED_HOURS) return false;
      setOpen(false, e.opens_at);
      showAlternatives(e.alternatives);
      return true;
    },
  };
}
