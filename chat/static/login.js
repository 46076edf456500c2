// Development sign-in: POST /dev/token, keep the token in this tab's sessionStorage, and go
// to the role's page. The token never appears in a URL.

import { api } from './client/http.js';
import { uuid } from './client/ids.js';
import { rememberLogin, ROLES, setToken } from './client/tokens.js';
import { $ } from './ui/dom.js';
import { loadLanguage, t } from './ui/i18n.js';

await loadLanguage();

const form = $('#login-form');
const nameInput = /** @type {HTMLInputElement} */ ($('#login-name'));
const subInput = /** @type {HTMLInputElement} */ ($('#login-sub'));
const error = $('#login-error');
const params = new URLSearchParams(location.search);

const wanted = params.get('role');
if (wanted && /** @type {readonly string[]} */ (ROLES).includes(wanted)) {
  /** @type {HTMLInputElement} */ ($(`input[name="role"][value="${wanted}"]`, form)).checked = true;
}
if (params.get('why') === 'expired') {
  $('#login-notice').textContent = t('login.expired');
}
nameInput.focus();

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  error.textContent = '';
  const role = /** @type {HTMLInputElement} */ ($('input[name="role"]:checked', form)).value;
  const name = nameInput.value.trim();
  if (!name) {
    error.textContent = t('login.enter_name');
    nameInput.focus();
    return;
  }
  const sub = subInput.value.trim() || `${role}-${uuid().slice(0, 8)}`;
  const button = /** @type {HTMLButtonElement} */ ($('button[type="submit"]', form));
  button.disabled = true;
  try {
    const data = await api(null, '/dev/token', { method: 'POST', body: { role, name, sub } });
    if (!data || typeof data.token !== 'string') throw new Error(t('login.no_token'));
    setToken(role, data.token);
    rememberLogin(role, name, sub);
    location.assign(`/${role}`);
  } catch (err) {
    const status = /** @type {{status?: number, message: string}} */ (err).status;
    error.textContent =
      status === 404 ? t('login.dev_off') : t('login.failed', { error: /** @type {Error} */ (err).message });
    button.disabled = false;
  }
});
