// What every role page has around its panels: the token, the client, the connection
// indicator, "Signed in as", sign-out, and the way back to /login when the token is refused.

import { PeerChatClient } from '../client/conversations.js';
import { clearToken, hasRememberedLogin, loginUrl, requireToken } from '../client/tokens.js';
import { $, announce, bidi, h } from './dom.js';
import { t, tParts } from './i18n.js';

/** @typedef {import('../client/tokens.js').Role} Role */

const STATUS_TEXT = {
  connecting: 'common.connecting',
  connected: 'common.connected',
  reconnecting: 'common.reconnecting',
  closed: 'common.disconnected',
};

/**
 * @param {PeerChatClient} client
 * @param {HTMLElement} el
 */
export function bindConnectionStatus(client, el) {
  client.on('status', (/** @type {{state: keyof STATUS_TEXT}} */ { state }) => {
    el.textContent = STATUS_TEXT[state] ? t(STATUS_TEXT[state]) : state;
    el.dataset.state = state;
  });
}

/**
 * @param {HTMLElement} button
 * @param {Role} role
 * @param {PeerChatClient} [client]
 */
export function bindSignOut(button, role, client) {
  button.addEventListener('click', () => {
    if (client) client.stop();
    clearToken(role);
    location.assign(loginUrl(role));
  });
}

/**
 * @param {PeerChatClient} client
 * @param {Role} role
 */
export function bindAuthFailure(client, role) {
  client.on('auth_failed', (/** @type {{welcomed?: boolean}} */ { welcomed } = {}) => {
    const devLogin = hasRememberedLogin(role);
    clearToken(role);
    if (!welcomed || devLogin) {
      location.replace(loginUrl(role, 'expired'));
      return;
    }
    // Signed in through the organisation's portal, and that sign-in ended (expired or
    // revoked): say so plainly, in place; there is no login page of ours to go to.
    const main = document.getElementById('main');
    const notice = h(
      'div',
      { class: 'notice', role: 'alert', testid: 'signed-out' },
      t('common.signed_out'),
    );
    if (main) main.replaceChildren(notice);
    else document.body.prepend(notice);
  });
}

/**
 * @typedef {object} Page
 * @property {string} token
 * @property {PeerChatClient} client
 * @property {(...parts: (Node | string)[]) => void} notice announces in the page's #notice
 */

/**
 * Sets up a role page, or sends the browser to /login (and returns null) when this tab has
 * no token for the role. The client is made but not connected: the page wires its panels
 * first, then calls client.connect().
 * @param {Role} role
 * @returns {Page | null}
 */
export function startPage(role) {
  const token = requireToken(role);
  if (!token) return null;
  const client = new PeerChatClient(token);
  bindConnectionStatus(client, $('#connection-status'));
  bindSignOut($('#sign-out'), role, client);
  bindAuthFailure(client, role);
  const userName = $('#user-name');
  client.on('welcome', (w) => {
    if (w.user && w.user.name) userName.replaceChildren(...tParts('common.signed_in_as', { name: bidi(w.user.name) }));
    else userName.textContent = '';
  });
  const noticeEl = $('#notice');
  return { token, client, notice: (...parts) => announce(noticeEl, ...parts) };
}
