// Member page, crisis panel: "Need help now?" in the header on every screen. A built-in
// list shows at once and stays if GET /api/crisis-resources fails.

import { api } from '../client/http.js';
import { $, clear, h, show } from '../ui/dom.js';
import { t } from '../ui/i18n.js';

/** The built-in list, in the page's language (called after the catalogue is loaded). */
const fallbackResources = () => [
  {
    name: t('member.lifeline_name'),
    contact: t('member.lifeline_contact'),
    description: t('member.lifeline_description'),
  },
  {
    name: t('member.emergency_name'),
    contact: '911 (US) / 112 (EU)',
    description: t('member.emergency_description'),
  },
];

/** @param {string} token */
export function setupCrisisPanel(token) {
  const button = $('#crisis-button');
  const panel = $('#crisis-panel');
  const list = $('#crisis-resources');
  let loaded = false;

  /** @param {any[]} resources */
  function render(resources) {
    clear(list);
    for (const r of resources) {
      if (!r || typeof r !== 'object') continue;
      const li = h(
        'li',
        { class: 'crisis-item', testid: 'crisis-resource' },
        h('strong', { class: 'crisis-name', dir: 'auto' }, String(r.name || '')),
        h('span', { class: 'crisis-contact', dir: 'auto' }, String(r.contact || '')),
      );
      // Short numbers in the contact (988, 911, 112) become call links: digits only, so
      // nothing the server sends can turn into a script URL.
      const numbers = String(r.contact || '').match(/\b\d{3,15}\b/g) || [];
      const links = h('span', { class: 'crisis-links' });
      for (const n of [...new Set(numbers)]) {
        links.append(h('a', { href: `tel:${n}`, class: 'call-link', testid: 'crisis-call' }, t('member.call', { n })));
        if (/text/i.test(String(r.contact || ''))) {
          links.append(h('a', { href: `sms:${n}`, class: 'call-link' }, t('member.text', { n })));
        }
      }
      if (links.childNodes.length) li.append(links);
      if (r.description) li.append(h('span', { class: 'crisis-desc', dir: 'auto' }, String(r.description)));
      list.append(li);
    }
  }

  async function load() {
    render(fallbackResources());
    try {
      const data = await api(token, '/api/crisis-resources');
      if (data && Array.isArray(data.resources) && data.resources.length) render(data.resources);
    } catch {
      /* the built-in list is already showing */
    }
    loaded = true;
  }

  /** @param {boolean} open */
  function setOpen(open) {
    show(panel, open);
    button.setAttribute('aria-expanded', String(open));
    if (open) panel.focus();
  }

  render(fallbackResources());
  load();
  button.addEventListener('click', () => {
    const open = panel.hidden;
    setOpen(open);
    if (open && !loaded) load();
  });
  $('#crisis-close').addEventListener('click', () => {
    setOpen(false);
    button.focus();
  });
  panel.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      setOpen(false);
      button.focus();
    }
  });
}
