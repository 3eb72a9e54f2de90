// The live view, `ChatStream`: a snapshot, then every event after it once
// and in order, its status, and the timers of its jobs. The jobs are in
// modules of their own, each working on the view's inside (`View`): the SSE
// transport (sse.js), the long-polling fallback (polling.js), one
// connection shared by the tabs of a browser (tabs.js), and the page's
// lifecycle (lifecycle.js).

import { ChatApi, ChatError } from './api.js';
import { DEFAULTS, defaultEnvironment, isNewerId, retryDelay, tokenClaims } from './common.js';
import { PageLifecycle } from './lifecycle.js';
import { isDeletion } from './messages.js';
import { Polling } from './polling.js';
import { SseTransport } from './sse.js';
import { TabSharing } from './tabs.js';

/** @typedef {import('../types/chat-client.js').ChatStreamOptions} ChatStreamOptions */
/** @typedef {import('../types/chat-client.js').Environment} Environment */
/** @typedef {import('../types/chat-client.js').Status} Status */
/** @typedef {import('../types/chat-client.js').Timings} Timings */
/** @typedef {{ id: string, data: any }} LogEvent */

/** How many delivered events a view keeps, to replay onto a snapshot older than them. */
const RECENT_EVENTS = 1_000;

/**
 * A live view of every room the caller may see (no `roomId`), or of one room.
 *
 * Events (all `CustomEvent`s; read `event.detail`):
 * - `snapshot`: `{ rooms, totalUnread, lastEventId }` (every room, all pages)
 *   or, for a room, `{ messages, hasMore, lastEventId }`; on start and after
 *   a `reset`. Events newer than the snapshot that were already delivered
 *   come again after it, so a view rebuilt from it misses nothing: apply
 *   events idempotently (by message id, or by the largest seq seen);
 * - `event`: `{ id, data }` for each event of the log (`data.type` is
 *   `message`, `message_edited`, `message_deleted`, `read` or `room`), once
 *   each and in order, whether it came by stream or by polling. A message
 *   comes in its latest version, replays included (a `message` event may
 *   already carry `editedAt` or `deletedAt`): show by message id the later
 *   version (see `newerVersion`);
 * - `reset`: the server could not resume; a fresh snapshot follows;
 * - `status`: `{ status, retryIn? }`, status one of connecting, live,
 *   reconnecting, polling, paused, offline; `retryIn` (ms) while waiting to
 *   try again;
 * - `error`: `{ error }` for a failure that retrying cannot mend (the room is
 *   gone, or the caller may not see it); the view stops. A room's view stops
 *   so right after delivering its room's deletion (a `room` event with
 *   `change: 'deleted'`), with a ChatError 404 `room_deleted`: nothing of the
 *   room comes after it, and it is not reconnected to;
 * - `signal`: `{ data }` for a `typing` or `presence` signal, with the
 *   option `signals: true` only. Signals have no id, never move
 *   `lastEventId`, are not replayed after a reconnect and never come by
 *   polling: after each `live` status, fetch what they tell again (see
 *   `Presence`).
 */
export class ChatStream extends EventTarget {
  /** The inside, shared by the modules that do the view's jobs. */
  #view;

  /** @param {ChatStreamOptions} options */
  constructor(options) {
    super();
    if (typeof options?.getToken !== 'function') throw new TypeError('getToken is required');
    this.#view = new View(this, options);
    /** @type {Status} */
    this.status = 'connecting';
    /** @type {string | null} */
    this.lastEventId = null;
    /**
     * `{ sub, role }` of the caller's token, once `start()` has one.
     * @type {{ sub: string, role: 'admin' | 'user' } | null}
     */
    this.claims = null;
    /** @type {{ reconnects: number, lastEventAt: number | null, polls: number }} */
    this.stats = { reconnects: 0, lastEventAt: null, polls: 0 };
  }

  get isLeader() {
    return this.#view.tabs.leader;
  }

  /**
   * Whether this tab's stream has shown that the path passes data as it
   * comes (bytes at two moments). Until then it may still turn out to be
   * held on the way, and polling start.
   */
  get streamProven() {
    return this.#view.transport.main?.proven === true;
  }

  /** The JSON API this view uses (same token source and timeouts). */
  get api() {
    return this.#view.api;
  }

  /**
   * Loads the snapshot and goes live. Resolves once the first snapshot is
   * out, however many tries that takes (the status says it is retrying);
   * rejects only if retrying cannot help (see the `error` event) or on close.
   * @returns {Promise<void>}
   */
  start() {
    return this.#view.start();
  }

  /** Stops everything: no timer, listener, lock or connection is left. */
  close() {
    this.#view.close();
  }

  /** Names of the timers now pending (for tests and debugging). */
  pendingTimers() {
    return [...this.#view.timers.keys()];
  }
}

/**
 * The inside of a ChatStream: its options, timers, status and delivery of
 * events, and the four jobs (`tabs`, `transport`, `fallback`, `page`) that
 * work on it. Not part of the package's API.
 */
export class View {
  /**
   * Timer name → its id.
   * @type {Map<string, unknown>}
   */
  timers = new Map();
  /**
   * Timer name → what wakes the sleep waiting on it.
   * @type {Map<string, () => void>}
   */
  sleepers = new Map();
  closed = false;
  /**
   * What the connection does: 'stream', 'polling', 'paused', 'offline' or 'stopped'.
   * @type {'stream' | 'polling' | 'paused' | 'offline' | 'stopped'}
   */
  mode = 'stream';
  /** Whether a stream was ever live (connecting again is then reconnecting). */
  wasLive = false;
  /** @type {Promise<void> | null} */
  reloading = null;
  /** Whether the last status told of a retry to come. */
  toldRetry = false;
  /**
   * The last events delivered, newest last.
   * @type {LogEvent[]}
   */
  recent = [];

  /**
   * @param {ChatStream} target the view's face: its status, events and stats
   * @param {ChatStreamOptions} options
   */
  constructor(target, options) {
    this.target = target;
    /** @type {Timings & { baseUrl: string, roomId: string | null } & ChatStreamOptions} */
    this.options = { ...DEFAULTS, baseUrl: '', roomId: null, ...options };
    /** @type {Environment} */
    this.env = { ...defaultEnvironment(), ...(options.environment ?? {}) };
    this.api = new ChatApi({ ...this.options, environment: this.env });
    this.tabs = new TabSharing(this);
    this.transport = new SseTransport(this);
    this.fallback = new Polling(this);
    this.page = new PageLifecycle(this);
  }

  async start() {
    this.page.listen();
    // Who we are (for sharing, and for the app): a token, however many tries it takes.
    const token = await this.persist('token', () => this.options.getToken({ forceRefresh: false }));
    this.target.claims = tokenClaims(token);
    if (this.tabs.join()) {
      await this.loadSnapshot();
      this.tabs.queue(() => this.transport.connect('main'));
    } else {
      await this.loadSnapshot();
      this.tabs.leader = true;
      this.transport.connect('main');
    }
  }

  close() {
    this.closed = true;
    this.mode = 'stopped';
    this.transport.abort();
    this.fallback.abort();
    for (const name of [...this.timers.keys()]) this.cancel(name);
    this.page.close();
    this.tabs.close();
  }

  // ---- timers -------------------------------------------------------------

  /**
   * @param {string} name
   * @param {number} ms
   * @param {() => void} fn
   */
  later(name, ms, fn) {
    this.cancel(name);
    const id = this.env.setTimeout(() => {
      this.timers.delete(name);
      fn();
    }, ms);
    this.timers.set(name, id);
  }

  /**
   * Cancels the timer `name`; a sleep waiting on it ends at once.
   * @param {string} name
   */
  cancel(name) {
    const id = this.timers.get(name);
    if (id !== undefined) this.env.clearTimeout(id);
    this.timers.delete(name);
    this.sleepers.get(name)?.();
  }

  /**
   * Waits `ms` under the timer `name`, or until it is cancelled or the view closes.
   * @param {string} name
   * @param {number} ms
   * @returns {Promise<void>}
   */
  sleep(name, ms) {
    return new Promise((resolve) => {
      const wake = () => {
        if (this.sleepers.get(name) === wake) this.sleepers.delete(name);
        resolve();
      };
      this.later(name, ms, wake);
      this.sleepers.set(name, wake);
    });
  }

  /**
   * @param {Status} status
   * @param {{ retryIn?: number }} [extra]
   */
  setStatus(status, extra = {}) {
    // The same status again is news only if it says when a retry comes, or
    // if the last one did (the retry is over).
    if (this.target.status === status && extra.retryIn === undefined && !this.toldRetry) return;
    this.toldRetry = extra.retryIn !== undefined;
    this.target.status = status;
    this.emit('status', { status, ...extra });
    this.tabs.relay({ kind: 'status', status, ...extra });
  }

  /**
   * What the transports amount to now, as a status.
   * @returns {Status}
   */
  transportStatus() {
    if (this.mode === 'paused' || this.mode === 'offline') return this.mode;
    if (this.transport.main?.flowing) return 'live';
    if (this.mode === 'polling') return 'polling';
    return this.wasLive || this.transport.attempt > 0 ? 'reconnecting' : 'connecting';
  }

  /**
   * @param {string} type
   * @param {unknown} detail
   */
  emit(type, detail) {
    this.target.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** @param {unknown} error */
  fatal(error) {
    this.emit('error', { error });
    this.target.close();
  }

  // ---- snapshots ---------------------------------------------------------------

  async fetchSnapshot() {
    const room = this.options.roomId;
    if (room == null) return this.api.allRooms();
    return this.api.messages(room, { limit: this.options.snapshotMessages });
  }

  /**
   * Runs `work` until it succeeds, waiting between tries (with backoff, the
   * status saying so), unless retrying cannot help (the view then stops).
   * @template T
   * @param {string} name
   * @param {() => Promise<T>} work
   * @returns {Promise<T>}
   */
  async persist(name, work) {
    for (let attempt = 0; ; attempt += 1) {
      if (this.closed) throw new Error('closed');
      try {
        const result = await work();
        if (this.closed) throw new Error('closed');
        if (attempt > 0 && (this.tabs.leader || !this.tabs.sharing)) this.setStatus(this.transportStatus());
        return result;
      } catch (error) {
        if (this.closed) throw error;
        if (error instanceof ChatError && !error.retryable) {
          this.fatal(error);
          throw error;
        }
        const delay = retryDelay(error, attempt, this.options, this.env.random);
        this.setStatus(this.wasLive ? 'reconnecting' : 'connecting', { retryIn: delay });
        await this.sleep(name, delay);
      }
    }
  }

  /** Loads the snapshot, trying again until it comes (see `persist`). */
  async loadSnapshot() {
    const snapshot = await this.persist('snapshot', () => this.fetchSnapshot());
    this.tabs.relay({ kind: 'snapshot', snapshot });
    this.applySnapshot(snapshot);
  }

  /** After a reset: one reload at a time, while events keep flowing. */
  reload() {
    this.reloading ??= this.loadSnapshot()
      .catch(() => {})
      .finally(() => (this.reloading = null));
  }

  /**
   * Shows a snapshot, then again the events already delivered that it does
   * not reflect (a snapshot read while they arrived, or a tab's own
   * snapshot loaded while the leader relayed), so nothing is lost to it.
   * @param {{ lastEventId: string }} snapshot
   */
  applySnapshot(snapshot) {
    this.advance(snapshot.lastEventId);
    this.emit('snapshot', snapshot);
    for (const event of this.recent) {
      if (isNewerId(event.id, snapshot.lastEventId)) this.emit('event', event);
    }
  }

  // ---- events, from whichever transport -------------------------------------------

  /**
   * Handles one event of the log, as the stream or a poll brought it.
   * @param {string | null} id
   * @param {any} data
   */
  onLogEvent(id, data) {
    this.target.stats.lastEventAt = this.env.now();
    if (data.type === 'reset') {
      this.tabs.relay({ kind: 'reset', id, data });
      this.onReset(id, data);
      this.reload();
      return;
    }
    this.deliver(id, data);
  }

  /**
   * The server cannot serve our id. Go on from the id it gives, even if ours
   * was larger (a log restored from a backup): the events after it are new,
   * and what was delivered before is the old snapshot's.
   * @param {string | null | undefined} id
   * @param {unknown} data
   */
  onReset(id, data) {
    if (id != null) this.target.lastEventId = id;
    this.recent = [];
    this.emit('reset', data);
  }

  /**
   * Passes an event on once: ids only ever move forward.
   * @param {string | null} id
   * @param {any} data
   */
  deliver(id, data) {
    if (!isNewerId(id, this.target.lastEventId)) return;
    this.target.lastEventId = id;
    const event = { id: /** @type {string} */ (id), data };
    this.recent.push(event);
    if (this.recent.length > RECENT_EVENTS) this.recent.shift();
    this.emit('event', event);
    this.tabs.relay({ kind: 'event', id, data });
    // The room's last event: the server ends its stream, and would answer
    // a reconnect or a poll with a 404.
    if (isDeletion(data) && data.room.id === this.options.roomId) {
      this.fatal(new ChatError('the room was deleted', { status: 404, code: 'room_deleted' }));
    }
  }

  /**
   * Moves the resume point forward without an event (a quiet poll's answer).
   * @param {string | null | undefined} id
   */
  advance(id) {
    if (!isNewerId(id, this.target.lastEventId)) return;
    this.target.lastEventId = /** @type {string} */ (id);
    this.tabs.relay({ kind: 'position', id });
  }
}
