// The token store: one token per role in this tab's sessionStorage.
//
// The token lives in sessionStorage only: never in a URL, a cookie or localStorage, so it
// dies with the tab and is not sent anywhere we do not send it ourselves.

import { api } from './http.js';

const TOKEN_KEY = 'peerchat.token.';
// What the dev login page signed in with, so an expiring token can be renewed without
// asking again (PEERCHAT_DEV only; with an organisation's portal there is none).
const LOGIN_KEY = 'peerchat.login.';

/** @typedef {'member' | 'specialist' | 'supervisor'} Role */

/** @type {readonly Role[]} */
export const ROLES = Object.freeze(['member', 'specialist', 'supervisor']);

/**
 * @param {string} role
 * @returns {string | null}
 */
export function getToken(role) {
  try {
    return sessionStorage.getItem(TOKEN_KEY + role);
  } catch {
    return null;
  }
}

/**
 * @param {string} role
 * @param {string} token
 */
export function setToken(role, token) {
  sessionStorage.setItem(TOKEN_KEY + role, token);
}

/** @param {string} role */
export function clearToken(role) {
  try {
    sessionStorage.removeItem(TOKEN_KEY + role);
  } catch {
    /* storage disabled: nothing to clear */
  }
}

/**
 * @param {string} role
 * @param {string} name
 * @param {string} sub
 */
export function rememberLogin(role, name, sub) {
  sessionStorage.setItem(LOGIN_KEY + role, JSON.stringify({ name, sub }));
}

/**
 * Whether this tab signed in through the dev login (and so can get a fresh token itself).
 * @param {string} role
 */
export function hasRememberedLogin(role) {
  try {
    return Boolean(sessionStorage.getItem(LOGIN_KEY + role));
  } catch {
    return false;
  }
}

/**
 * A fresh token for the same person from the dev login, or null where there is none.
 * @param {string} role
 * @returns {Promise<string | null>}
 */
export async function renewToken(role) {
  let login;
  try {
    login = JSON.parse(sessionStorage.getItem(LOGIN_KEY + role) || 'null');
  } catch {
    login = null;
  }
  if (!login || typeof login.sub !== 'string') return null;
  try {
    const data = await api(null, '/dev/token', { method: 'POST', body: { role, name: login.name || '', sub: login.sub } });
    if (!data || typeof data.token !== 'string') return null;
    setToken(role, data.token);
    return data.token;
  } catch {
    return null;
  }
}

/**
 * The token's `exp` in milliseconds, or null if it cannot be read (we only read it to time
 * `reauth`; the server is the judge).
 * @param {string} token
 */
export function tokenExpiry(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(payload)).exp;
    return typeof exp === 'number' ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/**
 * The dev sign-in page, preset to a role; `why` explains why the user is there.
 * @param {string} role
 * @param {string} [why]
 */
export function loginUrl(role, why) {
  const params = new URLSearchParams();
  if (/** @type {readonly string[]} */ (ROLES).includes(role)) params.set('role', role);
  if (why) params.set('why', why);
  return '/login?' + params.toString();
}

/**
 * Returns the token, or sends the browser to the login page and returns null.
 * @param {Role} role
 */
export function requireToken(role) {
  const token = getToken(role);
  if (!token) {
    location.replace(loginUrl(role));
    return null;
  }
  return token;
}
