// JSON over HTTP with the bearer token in a header (never in the query string).

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the server could not be reached
   * @param {string} message shown to the user as text
   */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** @typedef {{method?: string, body?: unknown, headers?: Record<string, string>}} ApiOptions */

/**
 * @param {string | null} token
 * @param {string} path
 * @param {ApiOptions} [options] `headers` are sent too (e.g. X-Peerchat-Reason)
 * @returns {Promise<any>} the parsed JSON body (null when there is none)
 * @throws {ApiError} for a network failure or any non-2xx answer
 */
export async function api(token, path, { method = 'GET', body, headers: extra = {} } = {}) {
  /** @type {Record<string, string>} */
  const headers = { ...extra, Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'The server could not be reached.');
  }
  let data;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const message = data && typeof data.error === 'string' ? data.error : `HTTP ${res.status}`;
    throw new ApiError(res.status, message);
  }
  return data;
}
