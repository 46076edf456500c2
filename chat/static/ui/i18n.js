// The pages' words in more than one language. Each language is ONE file,
// chat/static/i18n/<code>.js, exporting `strings` (key → text, `{name}` for a value put in
// at run time); the server lists the files it has (GET /api/languages), so adding a
// language is adding its file. English (en.js) is complete and the fallback for any key.
//
// Which language: the one chosen with the switch on the page (remembered in localStorage
// under `peerchat.lang`), else the first of the browser's languages we have, else English.
//
// Markup carries its keys: `data-i18n="key"` replaces an element's text;
// `data-i18n-attr="aria-label:key; placeholder:key"` sets attributes. Scripts call t().

import { strings as en } from '../i18n/en.js';

const STORE_KEY = 'peerchat.lang';
/** @type {Record<string, string>} */
const english = en;

/** @type {Record<string, string>} */
let current = english;
let currentCode = 'en';
/** @type {string[]} */
let available = ['en'];

/**
 * The text for `key` in the page's language, with `{name}` placeholders filled from `vars`.
 * @param {string} key
 * @param {Record<string, string | number>} [vars]
 */
export function t(key, vars) {
  const text = current[key] ?? english[key] ?? key;
  return vars ? text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole)) : text;
}

/**
 * Text with a node (a name in bidi(), …) in it: `t(key)` split at `{name}` into strings and
 * the node given for that name, ready for append()/replaceChildren().
 * @param {string} key
 * @param {Record<string, Node | string | number>} parts
 * @returns {(Node | string)[]}
 */
export function tParts(key, parts) {
  const text = current[key] ?? english[key] ?? key;
  return text
    .split(/(\{\w+\})/)
    .filter(Boolean)
    .map((piece) => {
      const m = /^\{(\w+)\}$/.exec(piece);
      if (!m || !(m[1] in parts)) return piece;
      const v = parts[m[1]];
      return v instanceof Node ? v : String(v);
    });
}

export function language() {
  return currentCode;
}

/** @param {readonly string[]} have */
function preferred(have) {
  /** @type {string | null} */
  let stored;
  try {
    stored = localStorage.getItem(STORE_KEY);
  } catch {
    stored = null; // storage off: go by the browser
  }
  if (stored && have.includes(stored)) return stored;
  for (const tag of navigator.languages || [navigator.language]) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (have.includes(base)) return base;
  }
  return 'en';
}

/**
 * Load the page's language (call before anything renders text), then translate the markup.
 * Never fails: a missing list or file leaves the page in English.
 */
export async function loadLanguage() {
  try {
    const res = await fetch('/api/languages', { cache: 'no-store' });
    const data = res.ok ? await res.json() : null;
    if (data && Array.isArray(data.languages)) available = data.languages.map(String);
  } catch {
    available = ['en'];
  }
  const code = preferred(available);
  if (code !== 'en') {
    try {
      const mod = await import(`../i18n/${code}.js`);
      current = mod.strings;
      currentCode = code;
    } catch {
      current = english;
    }
  }
  document.documentElement.lang = currentCode;
  translate(document);
  languageSwitch();
}

/** @param {ParentNode} root */
export function translate(root) {
  for (const el of /** @type {NodeListOf<HTMLElement>} */ (root.querySelectorAll('[data-i18n]'))) {
    el.textContent = t(el.dataset.i18n || '');
  }
  for (const el of /** @type {NodeListOf<HTMLElement>} */ (root.querySelectorAll('[data-i18n-attr]'))) {
    for (const pair of (el.dataset.i18nAttr || '').split(';')) {
      const [attr, key] = pair.split(':').map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
  const title = document.querySelector('title[data-i18n]');
  if (title) document.title = title.textContent || document.title;
}

/** The language select in the page header (`#language`), when there is more than one. */
function languageSwitch() {
  const select = /** @type {HTMLSelectElement | null} */ (document.getElementById('language'));
  if (!select) return;
  const wrap = /** @type {HTMLElement | null} */ (select.closest('.language-switch'));
  if (available.length < 2) {
    if (wrap) wrap.hidden = true;
    return;
  }
  select.replaceChildren(
    ...available.map((code) => {
      const option = document.createElement('option');
      option.value = code;
      option.lang = code;
      option.textContent = nameOf(code);
      option.selected = code === currentCode;
      return option;
    }),
  );
  if (wrap) wrap.hidden = false;
  select.addEventListener('change', () => {
    try {
      localStorage.setItem(STORE_KEY, select.value);
    } catch {
      // Not remembered (storage off); the choice still applies to this load.
    }
    location.reload();
  });
}

/** @param {string} code "es" → "español", in that language's own words */
function nameOf(code) {
  try {
    const name = new Intl.DisplayNames([code], { type: 'language' }).of(code) || code;
    return name.charAt(0).toLocaleUpperCase(code) + name.slice(1);
  } catch {
    return code;
  }
}
