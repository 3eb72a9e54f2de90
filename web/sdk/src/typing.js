// Typing: `Typing` keeps who types in each room (each notice expiring by
// itself), `TypingSender` says, throttled, that the caller types.

import { DEFAULTS, defaultEnvironment } from './common.js';

/** @typedef {import('../types/chat-client.js').ChatApi} ChatApi */
/** @typedef {import('../types/chat-client.js').Environment} Environment */
/** @typedef {import('../types/chat-client.js').Message} Message */
/** @typedef {import('../types/chat-client.js').SignalData} SignalData */
/** @typedef {import('../types/chat-client.js').SignalSource} SignalSource */
/** @typedef {import('../types/chat-client.js').StreamData} StreamData */

/**
 * Who is typing, per room: a `typing` signal holds for its `expiresInMs`
 * unless renewed, and ends sooner with `typing: false` or a message from
 * that user. The caller's own signals are skipped (`me`). Given a `stream`,
 * it follows its signals and messages. Emits `change` with `{ roomId }`.
 * Its timers go with `close()`.
 */
export class Typing extends EventTarget {
  /** @type {Environment} */
  #env;
  /** @type {string | null} */
  #me;
  /** @type {Map<string, Map<string, unknown>>} */
  #rooms = new Map(); // roomId → Map(userId → timer)
  /** @type {Array<() => void>} */
  #cleanups = [];
  #closed = false;

  /** @param {{ me?: string | null, stream?: SignalSource | null, environment?: Partial<Environment> }} [options] */
  constructor({ me = null, stream = null, environment = {} } = {}) {
    super();
    this.#me = me;
    this.#env = { ...defaultEnvironment(), ...environment };
    if (stream) {
      /**
       * @param {string} type
       * @param {(event: any) => void} handler
       */
      const on = (type, handler) => {
        stream.addEventListener(type, handler);
        this.#cleanups.push(() => stream.removeEventListener(type, handler));
      };
      on('signal', (event) => this.apply(event.detail.data));
      on('event', (event) => {
        if (event.detail.data.type === 'message') this.message(event.detail.data.message);
      });
    }
  }

  /**
   * Who types in `roomId` now, in the order they began.
   * @param {string} roomId
   * @returns {string[]}
   */
  typists(roomId) {
    return [...(this.#rooms.get(roomId)?.keys() ?? [])];
  }

  /**
   * A `typing` signal (others are ignored).
   * @param {SignalData | StreamData} data
   */
  apply(data) {
    if (data?.type !== 'typing' || this.#closed) return;
    // The caller's own, from their other tabs or this one: not news to them.
    if (this.#me !== null && data.userId === this.#me) return;
    if (!data.typing) {
      this.#stop(data.roomId, data.userId);
      return;
    }
    let room = this.#rooms.get(data.roomId);
    if (!room) this.#rooms.set(data.roomId, (room = new Map()));
    const renewed = room.has(data.userId);
    if (renewed) this.#env.clearTimeout(room.get(data.userId));
    const ms = Number(data.expiresInMs) > 0 ? Number(data.expiresInMs) : 6_000;
    room.set(data.userId, this.#env.setTimeout(() => {
      room.delete(data.userId);
      this.#forget(data.roomId);
    }, ms));
    if (!renewed) this.#changed(data.roomId);
  }

  /**
   * A message arrived: its author has stopped typing it.
   * @param {Pick<Message, 'roomId' | 'authorId'>} message
   */
  message({ roomId, authorId }) {
    this.#stop(roomId, authorId);
  }

  close() {
    this.#closed = true;
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
    for (const room of this.#rooms.values()) for (const timer of room.values()) this.#env.clearTimeout(timer);
    this.#rooms.clear();
  }

  /** Timers now pending, for tests. */
  get pendingTimers() {
    let count = 0;
    for (const room of this.#rooms.values()) count += room.size;
    return count;
  }

  /**
   * @param {string} roomId
   * @param {string} userId
   */
  #stop(roomId, userId) {
    const room = this.#rooms.get(roomId);
    if (!room?.has(userId)) return;
    this.#env.clearTimeout(room.get(userId));
    room.delete(userId);
    this.#forget(roomId);
  }

  /** @param {string} roomId */
  #forget(roomId) {
    if (this.#rooms.get(roomId)?.size === 0) this.#rooms.delete(roomId);
    this.#changed(roomId);
  }

  /** @param {string} roomId */
  #changed(roomId) {
    this.dispatchEvent(new CustomEvent('change', { detail: { roomId } }));
  }
}

/**
 * Says "I am typing" for a text box, throttled: `input()` on each input
 * event sends `typing: true` at once and then at most every `typingRenew`
 * (3 s) while input keeps coming; `stop()` (on send, blur, or a room
 * change) sends `typing: false` if a true was sent. Failures (a 429 beyond
 * the rate) are dropped: the notice expires by itself. Uses no timers.
 */
export class TypingSender {
  /** @type {Pick<ChatApi, 'typing'>} */
  #api;
  /** @type {Environment} */
  #env;
  /** @type {number} */
  #renew;
  /** @type {() => string | null} */
  #room;
  /**
   * The room told that the caller types, and when it was last told.
   * @type {string | null}
   */
  #typingIn = null;
  #sentAt = -Infinity;

  /**
   * `room`: the room id, or a function giving the room the box writes to now.
   * @param {{ api: Pick<ChatApi, 'typing'>, room: string | null | (() => string | null), typingRenew?: number, environment?: Partial<Environment> }} options
   */
  constructor({ api, room, typingRenew = DEFAULTS.typingRenew, environment = {} }) {
    this.#api = api;
    this.#room = typeof room === 'function' ? room : () => room;
    this.#renew = typingRenew;
    this.#env = { ...defaultEnvironment(), ...environment };
  }

  /** The user typed (an input event). */
  input() {
    const roomId = this.#room() ?? null;
    if (this.#typingIn !== null && this.#typingIn !== roomId) this.stop();
    if (roomId === null) return;
    const now = this.#env.now();
    if (this.#typingIn === roomId && now - this.#sentAt < this.#renew) return;
    this.#typingIn = roomId;
    this.#sentAt = now;
    this.#api.typing(roomId, true).catch(() => {});
  }

  /** The user sent, left the box, or the box now writes elsewhere. */
  stop() {
    const roomId = this.#typingIn;
    if (roomId === null) return;
    this.#typingIn = null;
    this.#sentAt = -Infinity;
    this.#api.typing(roomId, false).catch(() => {});
  }
}
