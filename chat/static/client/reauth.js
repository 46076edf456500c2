// A socket lives no longer than its token (PRODUCT.md §4): a minute before `exp` (or a fifth
// of a short token's life) the client gets a fresh token and sends `reauth`; after a 4001
// that ends a signed-in session it tries once more with a fresh token. Fresh tokens come from
// the dev login (tokens.js renewToken); without one the server closes at `exp` with 4001 and
// the page says that the sign-in ended.

import { renewToken, tokenExpiry } from './tokens.js';

export class Reauth {
  /** @param {import('./socket.js').SocketClient} client */
  constructor(client) {
    this.client = client;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    this.renewing = false; // a 4001 after welcome: one try with a fresh token
  }

  cancel() {
    clearTimeout(this.timer);
  }

  /** A `welcome`: the sign-in holds again; time the next `reauth`. */
  welcomed() {
    this.renewing = false;
    this.schedule();
  }

  schedule() {
    this.cancel();
    const client = this.client;
    const exp = tokenExpiry(client.token);
    if (exp === null || !client.user) return;
    const left = exp - Date.now();
    const lead = Math.min(60000, left / 5);
    this.timer = setTimeout(async () => {
      const token = await renewToken(String(client.user && client.user.role));
      if (token && client.ready) client.send({ type: 'reauth', token });
    }, Math.max(1000, left - lead));
  }

  /**
   * After close 4001: try once per sign-in with a fresh token; without one, the client
   * gives up as for any refused token.
   * @param {number} code
   * @returns {boolean} whether a try is under way
   */
  retry(code) {
    const client = this.client;
    this.cancel();
    if (!client.user || this.renewing || client.stopped) return false;
    this.renewing = true;
    client.emit('status', { state: 'reconnecting', code });
    renewToken(String(client.user.role)).then((token) => {
      if (client.stopped) return;
      if (!token) return client.refused(code);
      client.token = token;
      client.open();
    });
    return true;
  }
}
