// Specialist page, availability switch and profile. The switch shows the server's echo
// (`availability`, `welcome.availability`), never a guess; the profile comes from
// `welcome.user` and GET /api/specialists/me.

import { api } from '../client/http.js';
import { $ } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

/** @typedef {import('../client/conversations.js').PeerChatClient} PeerChatClient */

/**
 * @param {PeerChatClient} client
 * @param {string} token
 * @param {{notice: (text: string) => void, activeChats: () => number}} hooks
 */
export function profilePanel(client, token, { notice, activeChats }) {
  const toggle = /** @type {HTMLButtonElement} */ ($('#availability-toggle'));
  const toggleText = $('#availability-text');
  let status = 'away';
  /** @type {any} GET /api/specialists/me */
  let profile = null;

  /** @param {string} next */
  function setAvailability(next) {
    status = next === 'available' ? 'available' : 'away';
    const on = status === 'available';
    toggle.setAttribute('aria-checked', String(on));
    toggle.dataset.status = status;
    toggleText.textContent = on ? t('spec.available') : t('spec.away');
    toggle.disabled = false;
  }

  function render() {
    const p = profile || {};
    const user = client.user || {};
    $('#profile-name').textContent = p.name || user.name || '–';
    $('#profile-tags').textContent = p.tags && p.tags.length ? p.tags.join(', ') : 'none yet';
    $('#profile-languages').textContent = p.languages && p.languages.length ? p.languages.join(', ') : '–';
    const active = activeChats();
    $('#profile-capacity').textContent = p.max_chats ? `${active} of ${p.max_chats}` : String(active);
  }

  async function load() {
    try {
      profile = await api(token, '/api/specialists/me');
    } catch (err) {
      if (/** @type {{status?: number}} */ (err).status === 401) client.emit('auth_failed', {});
    }
    render();
  }

  toggle.addEventListener('click', () => {
    const next = status === 'available' ? 'away' : 'available';
    if (!client.send({ type: 'availability', status: next })) notice(t('common.not_connected_retry'));
  });
  client.on('availability', (f) => {
    setAvailability(f.status);
    if (f.reason === 'missed_offers') notice(t('spec.away_missed_offers'));
    else if (f.reason === 'supervisor') notice(t('spec.away_supervisor'));
    else if (f.reason) notice(t('spec.now_status', { status: t(f.status === 'available' ? 'spec.available' : 'spec.away'), reason: f.reason.replace(/_/g, ' ') }));
  });

  return {
    /** @param {import('peerchat-protocol').Welcome} w */
    welcomed(w) {
      setAvailability(w.availability || status);
    },
    load,
    render,
  };
}
