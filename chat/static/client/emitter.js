// A tiny event emitter: a failing listener is logged and does not stop the others.

/** @typedef {(payload: any) => void} Listener */

export class Emitter {
  constructor() {
    /** @type {Map<string, Listener[]>} */
    this.listeners = new Map();
  }

  /**
   * @param {string} type
   * @param {Listener} fn
   */
  on(type, fn) {
    const list = this.listeners.get(type) || [];
    list.push(fn);
    this.listeners.set(type, list);
    return this;
  }

  /**
   * @param {string} type
   * @param {unknown} payload
   */
  emit(type, payload) {
    for (const fn of this.listeners.get(type) || []) {
      try {
        fn(payload);
      } catch (err) {
        console.error(`peerchat: a ${type} handler failed`, err);
      }
    }
  }
}
