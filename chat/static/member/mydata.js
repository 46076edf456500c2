// "Your data" on the member page (PRODUCT.md §10): download everything stored about you
// (GET /api/me/export), or delete it (DELETE /api/me) after a confirmation that says what
// goes and what stays. Kept in its own module so the page scripts can move around it.

import { ApiError } from '../client/http.js';
import { clearToken } from '../client/tokens.js';
import { $, announce } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

/**
 * @param {string} token
 * @param {import('../client/conversations.js').PeerChatClient} client
 * @param {import('../client/tokens.js').Role} role
 */
export function setupMyData(token, client, role) {
  const status = $('#my-data-status');
  const dialog = /** @type {HTMLDialogElement} */ ($('#delete-dialog'));
  const download = /** @type {HTMLButtonElement} */ ($('#download-data'));
  const erase = $('#delete-data');

  download.addEventListener('click', async () => {
    download.disabled = true;
    announce(status, t('member.preparing_download'));
    try {
      const res = await fetch('/api/me/export', {
        headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' },
        credentials: 'same-origin',
        cache: 'no-store',
      });
      if (!res.ok) throw new ApiError(res.status, `HTTP ${res.status}`);
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = 'peerchat-my-data.json';
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      announce(status, t('member.downloaded', { file: 'peerchat-my-data.json' }));
    } catch {
      announce(status, t('member.download_failed'));
    } finally {
      download.disabled = false;
    }
  });

  erase.addEventListener('click', () => dialog.showModal());
  $('#delete-cancel').addEventListener('click', () => dialog.close());
  // A modal <dialog> keeps focus inside, closes on Escape and gives focus back to the
  // button that opened it.
  $('#delete-confirm').addEventListener('click', async () => {
    const confirm = /** @type {HTMLButtonElement} */ ($('#delete-confirm'));
    confirm.disabled = true;
    try {
      const res = await fetch('/api/me', {
        method: 'DELETE',
        headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' },
        credentials: 'same-origin',
        cache: 'no-store',
      });
      if (res.status !== 202) throw new ApiError(res.status, `HTTP ${res.status}`);
    } catch {
      confirm.disabled = false;
      dialog.close();
      announce(status, t('member.delete_failed'));
      return;
    }
    if (client) client.stop();
    clearToken(role);
    dialog.close();
    const done = document.createElement('section');
    done.className = 'card';
    done.dataset.testid = 'data-deleted';
    const heading = document.createElement('h1');
    heading.tabIndex = -1;
    heading.textContent = t('member.deleted_heading');
    const text = document.createElement('p');
    text.textContent = t('member.deleted_text');
    done.append(heading, text);
    $('#main').replaceChildren(done);
    $('#my-data').hidden = true;
    $('#user-name').textContent = '';
    heading.focus();
  });
}
