// Development sign-in: POST /dev/token, keep the token in this tab's sessionStorage, and go
// to the role's page. The token never appears in a URL.

import { api, rememberLogin, setToken, uuid } from '/static/peerchat.js';

const ROLES = ['member', 'specialist', 'supervisor'];
const form = document.getElementById('login-form');
const nameInput = document.getElementById('login-name');
const subInput = document.getElementById('login-sub');
const error = document.getElementById('login-error');
const params = new URLSearchParams(location.search);

const wanted = params.get('role');
if (ROLES.includes(wanted)) form.querySelector(`input[name="role"][value="${wanted}"]`).checked = true;
if (params.get('why') === 'expired') {
  document.getElementById('login-notice').textContent = 'Your session ended or the token was refused. Please sign in again.';
}
nameInput.focus();

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  error.textContent = '';
  const role = form.querySelector('input[name="role"]:checked').value;
  const name = nameInput.value.trim();
  if (!name) {
    error.textContent = 'Please enter a display name.';
    nameInput.focus();
    return;
  }
  const sub = subInput.value.trim() || `${role}-${uuid().slice(0, 8)}`;
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    const data = await api(null, '/dev/token', { method: 'POST', body: { role, name, sub } });
    if (!data || typeof data.token !== 'string') throw new Error('the server sent no token');
    setToken(role, data.token);
    rememberLogin(role, name, sub);
    location.assign(`/${role}`);
  } catch (err) {
    error.textContent =
      err.status === 404 ? 'Development sign-in is turned off on this server (PEERCHAT_DEV is not set).' : `Could not sign in: ${err.message}`;
    button.disabled = false;
  }
});
