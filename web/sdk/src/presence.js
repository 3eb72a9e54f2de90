// Presence: `Presence`, who is online, from signals and snapshots in any
// order, refetched whenever the stream goes live again.

/** @typedef {import('../types/chat-client.js').ChatApi} ChatApi */
/** @typedef {import('../types/chat-client.js').PresenceSnapshot} PresenceSnapshot */
/** @typedef {import('../types/chat-client.js').SignalData} SignalData */
/** @typedef {import('../types/chat-client.js').SignalSource} SignalSource */
/** @typedef {import('../types/chat-client.js').StreamData} StreamData */

/** The most user ids one presence snapshot may ask for. */
const PRESENCE_BATCH = 100;

/**
 * Who is online, per user the news with the highest version: presence
 * signals and snapshots (`GET /api/chat/presence`) may arrive in any order,
 * and a snapshot's version counts for every user it lists. Given a
 * `stream`, it applies its signals and fetches the snapshot again whenever
 * the stream goes live (signals missed while it was down are not replayed)
 * and after a reset. Emits `change` with `{ userIds }` when someone's state
 * changed.
 */
export class Presence extends EventTarget {
  /** @type {Pick<ChatApi, 'presence'> | null} */
  #api;
  /** @type {Map<string, { online: boolean, version: number }>} */
  #users = new Map(); // userId → { online, version }
  /** @type {Set<string>} */
  #watched = new Set();
  /** @type {Array<() => void>} */
  #cleanups = [];
  #closed = false;

  /**
   * `api`: a ChatApi (or the stream's); `stream`: a ChatStream to follow, optional.
   * @param {{ api?: Pick<ChatApi, 'presence'>, stream?: SignalSource | null }} [options]
   */
  constructor({ api, stream = null } = {}) {
    super();
    this.#api = api ?? stream?.api ?? null;
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
      on('status', (event) => event.detail.status === 'live' && this.refresh());
      on('reset', () => this.refresh());
    }
  }

  /**
   * Whether the user is online: true, false, or null while unknown.
   * @param {string} userId
   * @returns {boolean | null}
   */
  online(userId) {
    return this.#users.get(userId)?.online ?? null;
  }

  /**
   * The version held for the user (0 when unknown).
   * @param {string} userId
   * @returns {number}
   */
  version(userId) {
    return this.#users.get(userId)?.version ?? 0;
  }

  /**
   * Adds users to follow and fetches the state of those new here.
   * @param {Iterable<string>} userIds
   * @returns {Promise<void>}
   */
  watch(userIds) {
    const fresh = [...new Set(userIds)].filter((id) => !this.#watched.has(id));
    for (const id of fresh) this.#watched.add(id);
    return fresh.length > 0 ? this.refresh(fresh) : Promise.resolve();
  }

  /**
   * Fetches the snapshot of `userIds` (the watched ones by default), in
   * batches the server accepts. A failure is left for the next reconnect:
   * the signals meanwhile still apply.
   * @param {string[]} [userIds]
   * @returns {Promise<void>}
   */
  async refresh(userIds = [...this.#watched]) {
    if (!this.#api || this.#closed) return;
    const batches = [];
    for (let i = 0; i < userIds.length; i += PRESENCE_BATCH) batches.push(userIds.slice(i, i + PRESENCE_BATCH));
    await Promise.all(batches.map((batch) => /** @type {Pick<ChatApi, 'presence'>} */ (this.#api).presence(batch)
      .then((snapshot) => this.applySnapshot(snapshot))
      .catch(() => {})));
  }

  /**
   * A `presence` signal (others are ignored); whether it changed anything.
   * @param {SignalData | StreamData} data
   * @returns {boolean}
   */
  apply(data) {
    if (data?.type !== 'presence' || this.#closed) return false;
    const changed = this.#take(data.userId, data.online, data.version);
    if (changed) this.#changed([data.userId]);
    return changed;
  }

  /**
   * A `GET /api/chat/presence` answer; the user ids whose state changed.
   * @param {PresenceSnapshot} snapshot
   * @returns {string[]}
   */
  applySnapshot({ version, users = [] }) {
    if (this.#closed) return [];
    const changed = users.filter(({ userId, online }) => this.#take(userId, online, version)).map((u) => u.userId);
    if (changed.length > 0) this.#changed(changed);
    return changed;
  }

  close() {
    this.#closed = true;
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
  }

  /**
   * Older news than what is held changes nothing; whether the state shown changed.
   * @param {string} userId
   * @param {boolean} online
   * @param {number} version
   */
  #take(userId, online, version) {
    const held = this.#users.get(userId);
    if (held && held.version >= version) return false;
    this.#users.set(userId, { online: Boolean(online), version });
    return !held || held.online !== Boolean(online);
  }

  /** @param {string[]} userIds */
  #changed(userIds) {
    this.dispatchEvent(new CustomEvent('change', { detail: { userIds } }));
  }
}
