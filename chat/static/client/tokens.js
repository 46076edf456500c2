// The token store: one token per role in this tab's sessionStorage.
//
// The token lives in sessionStorage only: never in a URL, a cookie or localStorage, so it
// dies with the tab and is not sent anywhere we do not send it ourselves.

const TOKEN_KEY = 'peerchat.token.';

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
