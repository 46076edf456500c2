// DOM builders that can only make text, and small DOM helpers.
//
// Every string that came from a person or the server goes into the page as a text node:
// h() has no way to set HTML, event-handler attributes or inline styles, so a message body
// like `<img src=x onerror=...>` can only ever show as those characters.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** @typedef {Node | string | number | null | undefined | false} Child */
/** @typedef {Record<string, any>} Props */

/**
 * @param {Element & {dataset?: DOMStringMap}} el
 * @param {Props | undefined} props
 */
function setProps(el, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    const lower = key.toLowerCase();
    if (lower.startsWith('on') || lower === 'style' || lower === 'innerhtml' || lower === 'srcdoc') {
      throw new Error(`h(): refusing to set ${key}`);
    }
    if (key === 'text') el.textContent = String(value);
    else if (key === 'class') el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (key === 'testid') el.setAttribute('data-testid', value);
    else if (key === 'dataset') for (const [k, v] of Object.entries(value)) /** @type {HTMLElement} */ (el).dataset[k] = String(v);
    else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'selected') /** @type {any} */ (el)[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

/**
 * @param {Element} el
 * @param {(Child | Child[])[]} children
 */
function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/**
 * h('p', {class: 'note', testid: 'x'}, 'text', otherNode): an element built with DOM APIs.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Props} [props]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

/**
 * The same for SVG (no href: nothing from data becomes a link).
 * @param {string} tag
 * @param {Record<string, string | number>} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {SVGElement}
 */
export function s(tag, attrs, ...children) {
  const el = /** @type {SVGElement} */ (document.createElementNS(SVG_NS, tag));
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.toLowerCase().startsWith('on') || key === 'style' || key === 'href') throw new Error(`s(): refusing ${key}`);
    if (key === 'text') el.textContent = String(value);
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/**
 * Text a person wrote (a name, an alias, a note), isolated so that bidi controls or
 * right-to-left text in it cannot reorder the words around it.
 * @param {unknown} text
 */
export function bidi(text) {
  return h('bdi', {}, String(text ?? ''));
}

/**
 * The element the page's HTML promises; a missing one is a bug in the page, said plainly.
 * @template {HTMLElement} [T=HTMLElement]
 * @param {string} selector
 * @param {ParentNode} [root]
 * @returns {T}
 */
export function $(selector, root = document) {
  const el = root.querySelector(selector);
  if (!el) throw new Error(`page element missing: ${selector}`);
  return /** @type {T} */ (el);
}

/**
 * @template {Element} T
 * @param {T} el
 * @returns {T}
 */
export function clear(el) {
  el.replaceChildren();
  return el;
}

/**
 * @param {HTMLElement | SVGElement} el
 * @param {boolean} [visible]
 */
export function show(el, visible = true) {
  /** @type {HTMLElement} */ (el).hidden = !visible;
}

/**
 * A short-lived message in a polite (or assertive) live region.
 * @param {HTMLElement} region
 * @param {...(Node | string)} parts text, or nodes such as bidi(name)
 */
export function announce(region, ...parts) {
  region.textContent = '';
  // A fresh text node after a tick makes screen readers repeat identical announcements.
  setTimeout(() => region.replaceChildren(...parts), 50);
}
