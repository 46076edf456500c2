// A tiny event emitter: a failing listener is logged and does not stop the others.

/** @template {Record<string, any>} Events payload type by event name */
export class Emitter {
  constructor() {
    /** @type {Map<string, ((payload: any) => void)[]>} */
    this.listeners = new Map();
  }

  /**
   * @template {keyof Events & string} K
   * @param {K} type
   * @param {(payload: Events[K]) => void} fn
   */
  on(type, fn) {
    const list = this.listeners.get(type) || [];
    list.push(fn);
    this.listeners.set(type, list);
    return this;
  }

  /**
   * @template {keyof Events & string} K
   * @param {K} type
   * @param {Events[K]} payload
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
