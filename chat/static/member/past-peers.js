// Member page, "Peers you talked with": the past peers from `welcome` (within the
// retention period), each with "Ask for … again", which names them as the request's
// prefer_specialist. The protocol's honest fallback stands: if they cannot take it soon,
// another peer does, and the member is told.

import { $, bidi, clear, h, show } from '../ui/dom.js';
import { language, t, tParts } from '../ui/i18n.js';

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */
/** @typedef {{id: string, name: string, last_at: string}} PastPeer */

/** @param {string | undefined} iso "12 November" */
function formatDay(iso) {
  const d = new Date(iso ?? '');
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleDateString(language(), { day: 'numeric', month: 'long' });
}

/** @param {PeerChatClient} client */
export function pastPeersPanel(client) {
  const panel = $('#past-peers');
  const list = $('#past-peers-list');
  const chosen = $('#preferred-peer');
  const chosenText = $('#preferred-peer-text');
  /** @type {PastPeer | null} */
  let preferred = null;

  /** @param {PastPeer | null} peer */
  function choose(peer) {
    preferred = peer;
    show(chosen, peer !== null);
    clear(chosenText);
    if (peer) {
      chosenText.append(...tParts('member.asking_again', { name: bidi(peer.name) }));
      /** @type {HTMLButtonElement} */ ($('#request-button')).focus();
    }
  }

  /** @param {PastPeer[] | null | undefined} peers */
  function render(peers) {
    clear(list);
    for (const p of Array.isArray(peers) ? peers : []) {
      if (!p || typeof p.id !== 'string' || !p.id) continue;
      const name = String(p.name || t('chat.your_peer'));
      const ask = h('button', { type: 'button', class: 'secondary', testid: 'ask-again' }, ...tParts('member.ask_again', { name: bidi(name) }));
      ask.setAttribute('aria-label', t('member.ask_again', { name }));
      ask.addEventListener('click', () => choose({ id: p.id, name, last_at: p.last_at }));
      const when = formatDay(p.last_at);
      list.append(
        h(
          'li',
          { class: 'past-peer', testid: 'past-peer' },
          h('strong', { testid: 'past-peer-name' }, bidi(name)),
          when ? h('span', { class: 'hint' }, ` — ${t('member.last_talked', { when })}`) : null,
          ' ',
          ask,
        ),
      );
    }
    show(panel, list.childNodes.length > 0);
    if (preferred && !(peers || []).some((p) => p && p.id === preferred?.id)) choose(null);
  }

  $('#preferred-peer-clear').addEventListener('click', () => choose(null));
  client.on('welcome', (w) => render(w.past_peers));
  client.on('queued', () => choose(null));

  return {
    /** The specialist to ask for in the next request, if the member chose one. */
    get preferredId() {
      return preferred ? preferred.id : null;
    },
  };
}
