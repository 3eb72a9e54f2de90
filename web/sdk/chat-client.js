// chat-server-client: a dependency-free client for chat-server, for browsers
// and Node 20+.
//
// It keeps a view live without refreshes: it loads a snapshot, streams every
// change after it over Server-Sent Events, reconnects with jittered backoff
// and resumes by event id (nothing lost, nothing twice), falls back to
// long-polling the same event log when streaming fails (a proxy that buffers,
// a filter that cuts), returns to streaming as soon as it works again, pauses
// in long-hidden tabs, and shares one connection between all tabs of a
// browser. Sends carry an idempotency key kept across retries, so a send
// whose answer was lost is retried without ever storing the message twice.
// Streams opened with `signals` also bring typing and presence signals,
// which `Typing`, `Presence` and `TypingSender` keep and send.
//
// Why fetch and not EventSource: with fetch the token travels in a header
// (out of URLs and server logs), `Last-Event-ID` can be sent on every
// connection we open, and 401/429/503 with Retry-After are visible, where
// EventSource hides every failure behind a bare `error` event.

export const DEFAULTS = Object.freeze({
  heartbeatTimeout: 60_000, // silence on a live stream that means it is dead
  connectTimeout: 10_000, // for a stream's first bytes, and any request's answer
  backoffInitial: 1_000, // first retry delay ceiling; doubles per failure
  backoffMax: 5_000, // so anything that failed is tried again within 5 s
  maxAttempts: 5, // failed stream connects before falling back to polling
  reconnectFloor: 500, // the least wait before reconnecting, even after a clean end
  steadyStream: 10_000, // a stream that lived this long and ended cleanly was not a failure
  pollWait: 25, // seconds the server may hold a long-poll open
  pollInterval: 1_000, // the least time between polls that bring nothing
  streamRetryInterval: 5_000, // while polling, how often streaming is tried again
  pauseWhenHiddenAfter: 300_000,
  shareAcrossTabs: true,
  snapshotMessages: 50, // a room's newest messages in its snapshot
  sendTimeout: 10_000, // a send not answered within this is retried
  sendAttempts: 5, // tries of a send whose outcome stays unknown
  signals: false, // whether the stream carries typing and presence signals
  typingRenew: 3_000, // how often a typist says again that they type
});

/** Event types that are signals: never in the log, no id, not replayed. */
const SIGNALS = new Set(['typing', 'presence']);
/** The most user ids one presence snapshot may ask for. */
const PRESENCE_BATCH = 100;

/** Full jitter: a delay uniformly in [0, min(max, initial * 2^attempt)]. */
export function backoffDelay(attempt, options = DEFAULTS, random = Math.random) {
  const ceiling = Math.min(options.backoffMax, options.backoffInitial * 2 ** attempt);
  return Math.floor(random() * ceiling);
}

/**
 * A delay the server asked for (`Retry-After`), spread so that clients told
 * the same thing do not come back in lockstep: uniformly in [ms, 2 ms).
 */
export function jittered(ms, random = Math.random) {
  return Math.floor(ms * (1 + random()));
}

/** Event ids are decimal strings that may exceed 2^53: compare them as text. */
export function isNewerId(id, than) {
  if (id == null || id === '') return false;
  if (than == null || than === '') return true;
  if (id.length !== than.length) return id.length > than.length;
  return id > than;
}

/** A fresh idempotency key for a message (a `clientId`). */
export function newClientId(random = Math.random) {
  const uuid = globalThis.crypto?.randomUUID?.();
  if (uuid) return uuid;
  return `c-${Date.now().toString(36)}-${Math.floor(random() * 2 ** 52).toString(36)}`;
}

/**
 * The SSE wire format, incrementally: feed it text, it calls `onEvent` with
 * `{ id, hasId, data }` for every event that carries data.
 */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = '';
    this.data = [];
    this.lastEventId = '';
    this.hasId = false;
  }

  push(text) {
    this.buffer += text;
    for (;;) {
      const end = this.buffer.search(/[\r\n]/);
      if (end < 0) return;
      // A lone \r at the end may be the first half of \r\n: wait for more.
      if (this.buffer[end] === '\r' && end === this.buffer.length - 1) return;
      const line = this.buffer.slice(0, end);
      const width = this.buffer.startsWith('\r\n', end) ? 2 : 1;
      this.buffer = this.buffer.slice(end + width);
      this.#line(line);
    }
  }

  #line(line) {
    if (line === '') {
      if (this.data.length > 0) {
        this.onEvent({ id: this.lastEventId, hasId: this.hasId, data: this.data.join('\n') });
      }
      this.data = [];
      this.hasId = false;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) {
      this.lastEventId = value;
      this.hasId = true;
    }
  }
}

/** The claims of a JWT, read without verifying it (the server does that). */
export function tokenClaims(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(payload));
    return { sub: claims.sub ?? '', role: claims.role === 'admin' ? 'admin' : 'user' };
  } catch {
    return { sub: '', role: 'user' };
  }
}

/**
 * A failed request. `status` is 0 when no answer came (a network error or a
 * timeout); `retryable` says whether trying again may work; `outcome` is
 * `'unknown'` when a write may have taken effect all the same.
 */
export class ChatError extends Error {
  constructor(message, { status = 0, code = null, retryAfter = null, outcome = null, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ChatError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.outcome = outcome ?? (status === 0 ? 'unknown' : null);
  }

  get retryable() {
    return this.status === 0 || this.status === 401 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

/** A send that finally failed; `clientId` sends the same message again. */
export class SendError extends ChatError {
  constructor(error, clientId) {
    super(error.message, error);
    this.name = 'SendError';
    this.clientId = clientId;
  }
}

function defaultEnvironment() {
  const g = globalThis;
  return {
    fetch: (...args) => g.fetch(...args),
    setTimeout: (fn, ms) => g.setTimeout(fn, ms),
    clearTimeout: (id) => g.clearTimeout(id),
    now: () => Date.now(),
    random: Math.random,
    document: g.document,
    window: g.window,
    locks: g.navigator?.locks,
    BroadcastChannel: g.BroadcastChannel,
  };
}

/** Turns a failed answer into a ChatError, with the server's code and delay. */
async function answerError(response) {
  const body = await response.json().catch(() => null);
  const seconds = Number(response.headers.get('retry-after'));
  return new ChatError(body?.error?.message ?? `HTTP ${response.status}`, {
    status: response.status,
    code: body?.error?.code ?? null,
    retryAfter: seconds > 0 ? seconds : null,
    outcome: body?.error?.outcome ?? null,
  });
}

/** The JSON API, with one token source, timeouts and a token refresh on 401. */
export class ChatApi {
  #env;
  #needFreshToken = false;

  constructor({ baseUrl = '', getToken, fetch, environment = {}, ...timings }) {
    if (typeof getToken !== 'function') throw new TypeError('getToken is required');
    this.baseUrl = baseUrl;
    this.getToken = getToken;
    this.options = { ...DEFAULTS, ...timings };
    this.#env = { ...defaultEnvironment(), ...(fetch ? { fetch } : {}), ...environment };
  }

  /** Asks for a fresh token on the next request (after `auth_expired`). */
  refreshToken() {
    this.#needFreshToken = true;
  }

  /**
   * Fetches `path` with the bearer token, retrying once with a fresh token
   * after a 401. `timeout` bounds the wait for the answer's head; `signal`
   * aborts. Network failures and timeouts reject with a ChatError (status 0).
   */
  async fetch(path, { timeout = this.options.connectTimeout, signal, ...init } = {}) {
    for (let attempt = 0; ; attempt += 1) {
      const token = await this.getToken({ forceRefresh: this.#needFreshToken });
      this.#needFreshToken = false;
      // The caller's signal aborts the answer's body too, for as long as it is read.
      const controller = new AbortController();
      signal?.addEventListener('abort', () => controller.abort(), { once: true });
      if (signal?.aborted) controller.abort();
      let timedOut = false;
      const timer = timeout > 0
        ? this.#env.setTimeout(() => {
          timedOut = true;
          controller.abort();
        }, timeout)
        : null;
      let response;
      try {
        response = await this.#env.fetch(`${this.baseUrl}${path}`, {
          ...init,
          headers: { ...(init.headers ?? {}), Authorization: `Bearer ${token}` },
          cache: 'no-store',
          signal: controller.signal,
        });
      } catch (cause) {
        if (signal?.aborted) throw cause;
        throw new ChatError(timedOut ? 'no answer in time' : 'the network failed', { cause });
      } finally {
        if (timer !== null) this.#env.clearTimeout(timer);
      }
      if (response.status === 401 && attempt === 0) {
        this.#needFreshToken = true;
        continue;
      }
      return response;
    }
  }

  /** A JSON request; resolves with the answer's JSON, rejects with a ChatError. */
  async request(method, path, body, options = {}) {
    const response = await this.fetch(path, {
      ...options,
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw await answerError(response);
    if (response.status === 204) return null;
    try {
      return await response.json();
    } catch (cause) {
      throw new ChatError('the answer was cut short', { cause, outcome: method === 'GET' ? null : 'unknown' });
    }
  }

  /** One page of the caller's rooms, newest activity first. */
  rooms({ limit, pageToken } = {}) {
    const query = new URLSearchParams();
    if (limit) query.set('limit', String(limit));
    if (pageToken) query.set('pageToken', pageToken);
    const text = query.toString();
    return this.request('GET', `/api/chat/rooms${text ? `?${text}` : ''}`);
  }

  /**
   * Every room the caller may see, page after page, as one listing: the
   * first page's `totalUnread` and `lastEventId` (resume from it: rooms that
   * moved while paging arrive as events after it).
   */
  async allRooms(options = {}) {
    const first = await this.rooms({ limit: 500 });
    const rooms = [...first.rooms];
    const seen = new Set(rooms.map((room) => room.id));
    for (let token = first.nextPageToken; token;) {
      const page = await this.rooms({ limit: 500, pageToken: token, ...options });
      for (const room of page.rooms) {
        if (seen.has(room.id)) continue;
        seen.add(room.id);
        rooms.push(room);
      }
      token = page.nextPageToken;
    }
    return { ...first, rooms, nextPageToken: null };
  }

  room(roomId) {
    return this.request('GET', `/api/chat/rooms/${encodeURIComponent(roomId)}`);
  }

  createRoom(name, memberIds = []) {
    return this.request('POST', '/api/chat/rooms', { name, memberIds });
  }

  /** A page of a room's messages: `{ before }`, `{ after }` or the newest; `limit`. */
  messages(roomId, query = {}) {
    const text = typeof query === 'string' ? query.replace(/^\?/, '') : new URLSearchParams(
      Object.entries(query).filter(([, value]) => value != null).map(([key, value]) => [key, String(value)]),
    ).toString();
    return this.request('GET', `/api/chat/rooms/${encodeURIComponent(roomId)}/messages${text ? `?${text}` : ''}`);
  }

  /**
   * Sends a message, exactly once however often it is retried: it carries
   * `clientId` (made here when not given), and a send whose outcome is
   * unknown (no answer, a timeout, 408, 429, 5xx) is tried again with the
   * same one, after a jittered backoff, up to `sendAttempts` times. Rejects
   * with a SendError carrying the `clientId`: pass it to retry later.
   */
  async send(roomId, body, options = {}) {
    if (typeof options === 'string') options = { clientId: options };
    const clientId = options.clientId ?? newClientId(this.#env.random);
    const path = `/api/chat/rooms/${encodeURIComponent(roomId)}/messages`;
    // An earlier try may have been stored: the clientId says which message it was.
    const cancelled = (cause) => new SendError(new ChatError('the send was cancelled', { cause }), clientId);
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await this.request('POST', path, { body, clientId }, {
          timeout: this.options.sendTimeout,
          signal: options.signal,
        });
      } catch (error) {
        if (options.signal?.aborted) throw cancelled(error);
        const chatError = error instanceof ChatError ? error : new ChatError(String(error), { cause: error });
        if (!chatError.retryable || attempt + 1 >= this.options.sendAttempts) {
          throw new SendError(chatError, clientId);
        }
        options.onRetry?.({ attempt: attempt + 1, error: chatError, clientId });
        try {
          await this.#sleep(retryDelay(chatError, attempt, this.options, this.#env.random), options.signal);
        } catch (cause) {
          throw cancelled(cause);
        }
      }
    }
  }

  /**
   * Replaces a message's body: its author's, within the server's edit
   * window, or anyone's for an admin. Resolves with the message as it is
   * now (same id and seq, `editedAt`); the same body again changes nothing.
   * Rejects with a ChatError: 403 `not_author` or `edit_window_closed`, 409
   * `message_deleted`, 422 `invalid_body` (its `message` says why, for people).
   */
  editMessage(roomId, messageId, body) {
    return this.request('PATCH', messagePath(roomId, messageId), { body });
  }

  /**
   * Deletes a message (its author, or an admin): resolves with its
   * tombstone (`body: ''`, `deletedAt`, `deletedBy`). Deleting it again
   * answers the same tombstone, so a retry is harmless.
   */
  deleteMessage(roomId, messageId) {
    return this.request('DELETE', messagePath(roomId, messageId));
  }

  /**
   * Deletes a room with its messages and events (admins only): resolves
   * with `{ roomId, deletedAt, deletedBy }`, the same again for a room
   * deleted already, so a retry is harmless. Every viewer hears of it as a
   * `room` event with `change: 'deleted'`, the room's last. Rejects with a
   * ChatError: 403 `forbidden` for a non-admin, 404 `room_not_found`.
   */
  deleteRoom(roomId) {
    return this.request('DELETE', `/api/chat/rooms/${encodeURIComponent(roomId)}`);
  }

  markRead(roomId, seq) {
    return this.request('POST', `/api/chat/rooms/${encodeURIComponent(roomId)}/read`, { seq });
  }

  /**
   * Tells the room's viewers the caller types (`true`, holds for the
   * server's `expiresInMs`: renew it) or stopped (`false`). Rejects with a
   * ChatError 429 beyond the server's rate (2/s, bursts of 10).
   */
  typing(roomId, typing = true) {
    return this.request('POST', `/api/chat/rooms/${encodeURIComponent(roomId)}/typing`, { typing: Boolean(typing) });
  }

  /**
   * Who of `userIds` (at most 100) is online: `{ version, users: [{ userId,
   * online }] }`, leaving out users the caller may not see.
   */
  presence(userIds) {
    const query = new URLSearchParams({ userIds: [...userIds].join(',') });
    return this.request('GET', `/api/chat/presence?${query}`);
  }

  #sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      const timer = this.#env.setTimeout(resolve, ms);
      signal?.addEventListener('abort', () => {
        this.#env.clearTimeout(timer);
        reject(signal.reason ?? new Error('aborted'));
      }, { once: true });
    });
  }
}

function messagePath(roomId, messageId) {
  return `/api/chat/rooms/${encodeURIComponent(roomId)}/messages/${encodeURIComponent(messageId)}`;
}

/**
 * How long to wait before trying again after `error`, the `attempt`-th
 * failure (from 0): what the server asked for, jittered, else the backoff.
 */
export function retryDelay(error, attempt, options = DEFAULTS, random = Math.random) {
  if (error?.retryAfter) return jittered(error.retryAfter * 1000, random);
  return backoffDelay(attempt, options, random);
}

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
  #options;
  #env;
  #api;
  #timers = new Map();
  /** Timer name → what wakes the sleep waiting on it. */
  #sleepers = new Map();
  #cleanups = [];
  #closed = false;
  #leader = false;
  #channel = null;
  #releaseLock = null;
  /** 'stream', 'polling', 'paused', 'offline' or 'stopped'. */
  #mode = 'stream';
  /** The stream that delivers, and while polling a probe that may take over. */
  #main = null;
  #probe = null;
  /** The poll loop, while one runs: its round, and its request in flight. */
  #pollRound = 0;
  #polling = false;
  #poll = null;
  /** Consecutive failed stream connects. */
  #attempt = 0;
  /** Streams in a row that the server ended soon after they opened. */
  #quickEnds = 0;
  #wasLive = false;
  #reloading = null;
  /** Whether the last status told of a retry to come. */
  #toldRetry = false;
  /** The last events delivered, newest last. */
  #recent = [];

  constructor(options) {
    super();
    if (typeof options?.getToken !== 'function') throw new TypeError('getToken is required');
    this.#options = { ...DEFAULTS, baseUrl: '', roomId: null, ...options };
    this.#env = { ...defaultEnvironment(), ...(options.environment ?? {}) };
    this.#api = new ChatApi({ ...this.#options, environment: this.#env });
    this.status = 'connecting';
    this.lastEventId = null;
    /** `{ sub, role }` of the caller's token, once `start()` has one. */
    this.claims = null;
    this.stats = { reconnects: 0, lastEventAt: null, polls: 0 };
  }

  get isLeader() {
    return this.#leader;
  }

  /**
   * Whether this tab's stream has shown that the path passes data as it
   * comes (bytes at two moments). Until then it may still turn out to be
   * held on the way, and polling start.
   */
  get streamProven() {
    return this.#main?.proven === true;
  }

  /** The JSON API this view uses (same token source and timeouts). */
  get api() {
    return this.#api;
  }

  /**
   * Loads the snapshot and goes live. Resolves once the first snapshot is
   * out, however many tries that takes (the status says it is retrying);
   * rejects only if retrying cannot help (see the `error` event) or on close.
   */
  async start() {
    this.#listenToPage();
    // Who we are (for sharing, and for the app): a token, however many tries it takes.
    const token = await this.#persist('token', () => this.#options.getToken({ forceRefresh: false }));
    this.claims = tokenClaims(token);
    const { locks, BroadcastChannel } = this.#env;
    if (this.#options.shareAcrossTabs && locks && BroadcastChannel) {
      const name = [
        'chat-stream',
        new URL(this.#options.baseUrl || '/', this.#env.window?.location?.href ?? 'http://x/').origin,
        this.claims.sub,
        this.#options.roomId ?? '*',
      ].join('|');
      // Listen before loading, so nothing the leader relays falls in between.
      this.#channel = new BroadcastChannel(name);
      this.#channel.onmessage = (message) => this.#onChannel(message.data);
      // Ask the leader, if there is one, where things stand.
      this.#channel.postMessage({ kind: 'hello' });
      await this.#loadSnapshot();
      locks.request(name, () => {
        if (this.#closed) return undefined;
        this.#leader = true;
        this.#connect('main');
        // Held until close(): the next tab in line takes over then.
        return new Promise((resolve) => (this.#releaseLock = resolve));
      });
    } else {
      await this.#loadSnapshot();
      this.#leader = true;
      this.#connect('main');
    }
  }

  /** Stops everything: no timer, listener, lock or connection is left. */
  close() {
    this.#closed = true;
    this.#mode = 'stopped';
    for (const connection of [this.#main, this.#probe, this.#poll]) connection?.controller.abort();
    for (const name of [...this.#timers.keys()]) this.#cancel(name);
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
    this.#channel?.close();
    this.#releaseLock?.();
  }

  /** Names of the timers now pending (for tests and debugging). */
  pendingTimers() {
    return [...this.#timers.keys()];
  }

  // ---- timers -------------------------------------------------------------

  #later(name, ms, fn) {
    this.#cancel(name);
    const id = this.#env.setTimeout(() => {
      this.#timers.delete(name);
      fn();
    }, ms);
    this.#timers.set(name, id);
  }

  /** Cancels the timer `name`; a sleep waiting on it ends at once. */
  #cancel(name) {
    const id = this.#timers.get(name);
    if (id !== undefined) this.#env.clearTimeout(id);
    this.#timers.delete(name);
    this.#sleepers.get(name)?.();
  }

  /** Waits `ms` under the timer `name`, or until it is cancelled or the view closes. */
  #sleep(name, ms) {
    return new Promise((resolve) => {
      const wake = () => {
        if (this.#sleepers.get(name) === wake) this.#sleepers.delete(name);
        resolve();
      };
      this.#later(name, ms, wake);
      this.#sleepers.set(name, wake);
    });
  }

  #setStatus(status, extra = {}) {
    // The same status again is news only if it says when a retry comes, or
    // if the last one did (the retry is over).
    if (this.status === status && extra.retryIn === undefined && !this.#toldRetry) return;
    this.#toldRetry = extra.retryIn !== undefined;
    this.status = status;
    this.#emit('status', { status, ...extra });
    this.#relay({ kind: 'status', status, ...extra });
  }

  /** What the transports amount to now, as a status. */
  #transportStatus() {
    if (this.#mode === 'paused' || this.#mode === 'offline') return this.#mode;
    if (this.#main?.flowing) return 'live';
    if (this.#mode === 'polling') return 'polling';
    return this.#wasLive || this.#attempt > 0 ? 'reconnecting' : 'connecting';
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #relay(message) {
    if (this.#leader && this.#channel) this.#channel.postMessage(message);
  }

  #fatal(error) {
    this.#emit('error', { error });
    this.close();
  }

  // ---- followers (tabs that share the leader's connection) -----------------

  #onChannel(message) {
    if (this.#closed) return;
    if (this.#leader) {
      // A tab just joined: tell it the status it missed.
      if (message.kind === 'hello') this.#relay({ kind: 'status', status: this.status });
      // A visible tab needs the connection this hidden leader paused.
      if (message.kind === 'resume' && this.#mode === 'paused') this.#resume();
      return;
    }
    if (message.kind === 'status') {
      this.status = message.status;
      const { kind, ...detail } = message;
      this.#emit('status', detail);
      if (message.status === 'paused' && this.#env.document?.visibilityState === 'visible') {
        this.#channel.postMessage({ kind: 'resume' });
      }
    } else if (message.kind === 'event') {
      this.#deliver(message.id, message.data);
    } else if (message.kind === 'signal') {
      this.#emit('signal', { data: message.data });
    } else if (message.kind === 'position') {
      this.#advance(message.id);
    } else if (message.kind === 'snapshot') {
      this.#applySnapshot(message.snapshot);
    } else if (message.kind === 'reset') {
      this.#onReset(message.id, message.data);
    }
  }

  // ---- snapshots ---------------------------------------------------------------

  async #fetchSnapshot() {
    const room = this.#options.roomId;
    if (room == null) return this.#api.allRooms();
    return this.#api.messages(room, { limit: this.#options.snapshotMessages });
  }

  /**
   * Runs `work` until it succeeds, waiting between tries (with backoff, the
   * status saying so), unless retrying cannot help (the view then stops).
   */
  async #persist(name, work) {
    for (let attempt = 0; ; attempt += 1) {
      if (this.#closed) throw new Error('closed');
      try {
        const result = await work();
        if (this.#closed) throw new Error('closed');
        if (attempt > 0 && (this.#leader || !this.#channel)) this.#setStatus(this.#transportStatus());
        return result;
      } catch (error) {
        if (this.#closed) throw error;
        if (error instanceof ChatError && !error.retryable) {
          this.#fatal(error);
          throw error;
        }
        const delay = retryDelay(error, attempt, this.#options, this.#env.random);
        this.#setStatus(this.#wasLive ? 'reconnecting' : 'connecting', { retryIn: delay });
        await this.#sleep(name, delay);
      }
    }
  }

  /** Loads the snapshot, trying again until it comes (see `#persist`). */
  async #loadSnapshot() {
    const snapshot = await this.#persist('snapshot', () => this.#fetchSnapshot());
    this.#relay({ kind: 'snapshot', snapshot });
    this.#applySnapshot(snapshot);
  }

  /** After a reset: one reload at a time, while events keep flowing. */
  #reload() {
    this.#reloading ??= this.#loadSnapshot()
      .catch(() => {})
      .finally(() => (this.#reloading = null));
  }

  /**
   * Shows a snapshot, then again the events already delivered that it does
   * not reflect (a snapshot read while they arrived, or a tab's own
   * snapshot loaded while the leader relayed), so nothing is lost to it.
   */
  #applySnapshot(snapshot) {
    this.#advance(snapshot.lastEventId);
    this.#emit('snapshot', snapshot);
    for (const event of this.#recent) {
      if (isNewerId(event.id, snapshot.lastEventId)) this.#emit('event', event);
    }
  }

  // ---- events, from whichever transport -------------------------------------------

  /** Handles one event of the log, as the stream or a poll brought it. */
  #onLogEvent(id, data) {
    this.stats.lastEventAt = this.#env.now();
    if (data.type === 'reset') {
      this.#relay({ kind: 'reset', id, data });
      this.#onReset(id, data);
      this.#reload();
      return;
    }
    this.#deliver(id, data);
  }

  /**
   * The server cannot serve our id. Go on from the id it gives, even if ours
   * was larger (a log restored from a backup): the events after it are new,
   * and what was delivered before is the old snapshot's.
   */
  #onReset(id, data) {
    if (id != null) this.lastEventId = id;
    this.#recent = [];
    this.#emit('reset', data);
  }

  /** Passes an event on once: ids only ever move forward. */
  #deliver(id, data) {
    if (!isNewerId(id, this.lastEventId)) return;
    this.lastEventId = id;
    const event = { id, data };
    this.#recent.push(event);
    if (this.#recent.length > RECENT_EVENTS) this.#recent.shift();
    this.#emit('event', event);
    this.#relay({ kind: 'event', id, data });
    // The room's last event: the server ends its stream, and would answer
    // a reconnect or a poll with a 404.
    if (isDeletion(data) && data.room.id === this.#options.roomId) {
      this.#fatal(new ChatError('the room was deleted', { status: 404, code: 'room_deleted' }));
    }
  }

  /** Moves the resume point forward without an event (a quiet poll's answer). */
  #advance(id) {
    if (!isNewerId(id, this.lastEventId)) return;
    this.lastEventId = id;
    this.#relay({ kind: 'position', id });
  }

  // ---- the stream ------------------------------------------------------------

  /**
   * Opens a stream as the `main` connection or, while polling, as a `probe`
   * that becomes main once bytes flow. Its watchdog runs from the start: no
   * answer or no first bytes within `connectTimeout`, or silence for
   * `heartbeatTimeout` once flowing, and the connection is given up.
   *
   * A stream is `flowing` at its first bytes (it shows `live`), and `proven`
   * when bytes come again later: a path that passes the first bytes and then
   * holds the rest (a buffering proxy) never proves itself, so polling goes
   * on until a stream does, and such a stream counts as a failure.
   */
  async #connect(role) {
    if (this.#closed || !this.#leader) return;
    const connection = {
      role, controller: new AbortController(), answered: false, flowing: false, proven: false,
      openedAt: this.#env.now(), retryIn: null,
    };
    if (role === 'main') {
      this.#main?.controller.abort();
      this.#main = connection;
      this.#mode = 'stream';
      this.#setStatus(this.#wasLive || this.#attempt > 0 ? 'reconnecting' : 'connecting');
    } else {
      this.#probe = connection;
    }
    this.#watch(connection, this.#options.connectTimeout);
    try {
      const params = new URLSearchParams();
      if (this.#options.roomId != null) params.set('roomId', this.#options.roomId);
      if (this.#options.signals) params.set('signals', 'true');
      const query = params.toString() ? `?${params}` : '';
      const headers = { Accept: 'text/event-stream' };
      if (this.lastEventId != null) headers['Last-Event-ID'] = this.lastEventId;
      const response = await this.#api.fetch(`/api/chat/sse${query}`, {
        headers,
        signal: connection.controller.signal,
        timeout: 0, // the watchdog bounds it
      });
      if (!response.ok) throw await answerError(response);
      connection.answered = true;
      await this.#read(response, connection);
      // The server ended the stream (shutdown, token expiry): come back soon.
      if (!connection.controller.signal.aborted) this.#lost(connection, { ended: true });
    } catch (error) {
      if (this.#closed || connection.controller.signal.aborted) return;
      this.#lost(connection, { error });
    }
  }

  #watch(connection, ms) {
    this.#later(connection.role === 'main' ? 'watchdog' : 'probe-watchdog', ms, () => {
      connection.controller.abort();
      this.#lost(connection, {});
    });
  }

  async #read(response, connection) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser((event) => this.#onStreamEvent(event, connection));
    const abort = () => reader.cancel().catch(() => {});
    connection.controller.signal.addEventListener('abort', abort);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || connection.controller.signal.aborted) return;
        if (!connection.flowing) this.#flowing(connection);
        else if (!connection.proven) this.#proven(connection);
        if (connection !== this.#main) return; // superseded meanwhile
        this.#watch(connection, this.#options.heartbeatTimeout);
        parser.push(decoder.decode(value, { stream: true }));
      }
    } finally {
      connection.controller.signal.removeEventListener('abort', abort);
    }
  }

  /** The first bytes of a stream: it delivers from now on. */
  #flowing(connection) {
    connection.flowing = true;
    if (connection.role === 'probe') {
      // It resumes from an id no newer than anything polled since; repeats
      // are dropped by id. Polling goes on until the stream proves itself.
      this.#probe = null;
      for (const name of ['probe', 'probe-watchdog']) this.#cancel(name);
      this.#main?.controller.abort();
      connection.role = 'main';
      this.#main = connection;
    }
    this.#mode = 'stream';
    this.#wasLive = true;
    this.#setStatus('live');
  }

  /** Bytes again after the first: the path passes data as it comes. */
  #proven(connection) {
    connection.proven = true;
    this.#attempt = 0;
    if (this.#polling) this.#stopPolling();
  }

  #onStreamEvent({ id, hasId, data }, connection) {
    let parsed;
    try {
      parsed = JSON.parse(data);
    } catch {
      return;
    }
    if (parsed.type === 'heartbeat') return;
    if (parsed.type === 'unavailable') {
      // The server cannot read the store now, and says when to come back
      // (spread already); the stream ends next.
      connection.retryIn = Number(parsed.retryIn) || null;
      return;
    }
    if (parsed.type === 'auth_expired') {
      this.#api.refreshToken();
      return;
    }
    // Not in the log: no id to dedupe by or resume from.
    if (SIGNALS.has(parsed.type) && !hasId) {
      this.#emit('signal', { data: parsed });
      this.#relay({ kind: 'signal', data: parsed });
      return;
    }
    this.#onLogEvent(hasId ? id : null, parsed);
  }

  /** A connection failed, went silent, or ended. */
  #lost(connection, { error, ended = false } = {}) {
    if (this.#closed) return;
    if (connection.role === 'probe') {
      this.#cancel('probe-watchdog');
      if (this.#probe === connection) this.#probe = null;
      connection.controller.abort();
      return; // still polling; the next probe tries again
    }
    if (connection !== this.#main) return; // already replaced
    this.#cancel('watchdog');
    this.#main = null;
    connection.controller.abort();
    if (error instanceof ChatError && !error.retryable) {
      this.#fatal(error);
      return;
    }
    this.stats.reconnects += 1;
    if (connection.retryIn != null) {
      // Ended by the server until its store answers again: a failure, with
      // the server's own (spread) delay.
      this.#attempt += 1;
      this.#scheduleReconnect(Math.max(connection.retryIn, this.#options.reconnectFloor));
      return;
    }
    if (ended && connection.proven) {
      // Not a failure (a shutdown, a token to renew): reconnect soon, spread
      // a little, never in a tight loop; and if streams keep ending soon
      // after they open, wait longer each time.
      const lived = this.#env.now() - connection.openedAt;
      this.#quickEnds = lived >= this.#options.steadyStream ? 0 : this.#quickEnds + 1;
      this.#attempt = 0;
      const spread = backoffDelay(this.#quickEnds, this.#options, this.#env.random);
      this.#scheduleReconnect(this.#options.reconnectFloor + spread);
      return;
    }
    this.#attempt += 1;
    // Timed out before it was proven (no answer, no first bytes, or nothing
    // after them): something on the way holds the stream back. Poll now,
    // and let the probes find when streaming works again.
    const held = !connection.proven && !error;
    if (held || this.#polling || this.#attempt >= this.#options.maxAttempts) {
      this.#startPolling();
    } else {
      this.#scheduleReconnect(retryDelay(error, this.#attempt - 1, this.#options, this.#env.random));
    }
  }

  #scheduleReconnect(delay) {
    this.#setStatus('reconnecting', { retryIn: delay });
    this.#later('reconnect', delay, () => this.#connect('main'));
  }

  // ---- fallback: long-polling the same event log --------------------------------

  #startPolling() {
    this.#cancel('reconnect');
    this.#mode = 'polling';
    this.#setStatus('polling');
    if (!this.#polling) this.#pollLoop();
    this.#scheduleProbe();
  }

  #scheduleProbe() {
    // Never in lockstep with other clients, never later than the interval.
    const delay = Math.floor(this.#options.streamRetryInterval * (0.5 + this.#env.random() / 2));
    this.#later('probe', delay, () => {
      if (this.#mode !== 'polling') return;
      if (!this.#probe) this.#connect('probe');
      this.#scheduleProbe();
    });
  }

  #stopPolling() {
    this.#polling = false;
    this.#pollRound += 1;
    this.#poll?.controller.abort();
    this.#poll = null;
    this.#probe?.controller.abort();
    this.#probe = null;
    for (const name of ['poll', 'probe', 'probe-watchdog']) this.#cancel(name);
  }

  async #pollLoop() {
    this.#polling = true;
    const round = ++this.#pollRound;
    const polling = () => !this.#closed && round === this.#pollRound;
    for (let failures = 0; polling();) {
      const poll = { controller: new AbortController() };
      this.#poll = poll;
      const started = this.#env.now();
      try {
        const page = await this.#pollOnce(poll.controller.signal);
        if (!polling()) return;
        failures = 0;
        this.stats.polls += 1;
        for (const { id, data } of page.events) this.#onLogEvent(id, data);
        this.#advance(page.lastEventId);
        // A server that did not wait (it is shutting down, or waits little):
        // no tighter loop than `pollInterval`.
        const quick = this.#env.now() - started < this.#options.pollInterval;
        if (page.events.length === 0 && !page.hasMore && quick) {
          await this.#sleep('poll', this.#options.pollInterval);
        }
      } catch (error) {
        if (!polling() || poll.controller.signal.aborted) return;
        if (error instanceof ChatError && !error.retryable) {
          this.#fatal(error);
          return;
        }
        await this.#sleep('poll', retryDelay(error, failures, this.#options, this.#env.random));
        failures += 1;
      }
    }
  }

  async #pollOnce(signal) {
    const query = new URLSearchParams({ wait: String(this.#options.pollWait), limit: '500' });
    if (this.lastEventId != null) query.set('after', this.lastEventId);
    if (this.#options.roomId != null) query.set('roomId', this.#options.roomId);
    const page = await this.#api.request('GET', `/api/chat/events?${query}`, undefined, {
      signal,
      timeout: this.#options.pollWait * 1000 + this.#options.connectTimeout,
    });
    if (!Array.isArray(page?.events)) throw new ChatError('not an answer of /api/chat/events');
    return page;
  }

  // ---- the page: visibility and connectivity -------------------------------------------

  #listenToPage() {
    const { document, window } = this.#env;
    const on = (target, type, handler) => {
      if (!target?.addEventListener) return;
      target.addEventListener(type, handler);
      this.#cleanups.push(() => target.removeEventListener(type, handler));
    };
    on(document, 'visibilitychange', () => {
      if (document.visibilityState === 'hidden') {
        this.#later('hidden', this.#options.pauseWhenHiddenAfter, () => this.#pause('paused'));
      } else {
        this.#cancel('hidden');
        if (this.status !== 'paused') return;
        if (this.#leader) this.#resume();
        else this.#channel?.postMessage({ kind: 'resume' });
      }
    });
    on(window, 'offline', () => this.#pause('offline'));
    on(window, 'online', () => {
      if (this.#mode === 'offline') this.#resume();
    });
  }

  #pause(status) {
    if (!this.#leader || this.#closed) return;
    this.#stopPolling();
    this.#main?.controller.abort();
    this.#main = null;
    for (const name of ['watchdog', 'reconnect']) this.#cancel(name);
    this.#mode = status;
    this.#setStatus(status);
  }

  #resume() {
    if (!this.#leader || this.#closed) return;
    this.#attempt = 0;
    this.#connect('main');
  }
}

/**
 * Exact unread counts from a snapshot and the events after it, per room:
 * each room keeps its newest seq, the caller's read cursor (both only ever
 * moving forward) and how many messages past the cursor are deleted (the
 * server leaves them out of its count), so applying a snapshot or an event
 * twice, or a snapshot older than some events, changes nothing. A message
 * moves its author's cursor to it (posting reads the room), so a user's own
 * posts from another device clear that room's count too. A room's deletion
 * drops it for good: no later event of it counts, and it is never fetched.
 *
 * Which deleted messages a snapshot left out it does not say, only how
 * many: a deletion past the cursor, or a cursor that moves only part of the
 * way past deleted messages, makes the room's count unknown until the room
 * is fetched again (`unknownRooms`, `asOf`).
 */
export class UnreadCounter {
  /** `me`: the caller's user id; `admin`: whether they see every room. */
  constructor({ me, admin = false }) {
    this.me = me;
    this.admin = admin;
    this.rooms = new Map();
    /** Rooms deleted since the snapshot: nothing of them counts again, nothing fetches them. */
    this.deleted = new Set();
  }

  #entry(roomId) {
    let entry = this.rooms.get(roomId);
    if (!entry) {
      entry = { lastSeq: 0, cursor: 0, deleted: 0, known: false, changes: 0 };
      this.rooms.set(roomId, entry);
    }
    return entry;
  }

  /**
   * The count can no longer be worked out from what the entry holds: the
   * room must be fetched, and a fetch already under way may have read it
   * before this change (its answer does not make the room known).
   */
  #unsettle(entry) {
    entry.known = false;
    entry.changes += 1;
  }

  /**
   * A room as a listing or `GET /rooms/{id}` shows it (with `unreadCount`,
   * and `lastReadSeq` from servers that send it), or as a `room` event does
   * (its newest seq only). For a room fetched because its count was
   * unknown, pass the `asOf(roomId)` taken before the fetch began.
   */
  applyRoom(room, asOf) {
    const entry = this.#entry(room.id);
    const lastSeq = room.lastMessage?.seq ?? 0;
    if (room.unreadCount == null) {
      entry.lastSeq = Math.max(entry.lastSeq, lastSeq);
      return entry;
    }
    // One moment of the room: the cursor, and the deleted messages past it
    // that the count leaves out.
    const cursor = room.lastReadSeq ?? lastSeq - room.unreadCount;
    const deleted = Math.max(0, lastSeq - cursor - room.unreadCount);
    if (entry.known) {
      // Both states are true ones, at different moments: the later is
      // ahead in seq or cursor; with both equal, only deletions differ, and
      // they only accumulate.
      if (lastSeq > entry.lastSeq || cursor > entry.cursor) {
        Object.assign(entry, { lastSeq, cursor, deleted });
      } else if (lastSeq === entry.lastSeq && cursor === entry.cursor) {
        entry.deleted = Math.max(entry.deleted, deleted);
      }
      return entry;
    }
    // What events added while it was unknown is newer messages (none of
    // them deleted: a deletion unsettles the room), or it stays unknown.
    entry.lastSeq = Math.max(entry.lastSeq, lastSeq);
    entry.cursor = Math.max(entry.cursor, cursor);
    entry.deleted = deleted;
    entry.known = asOf === undefined || asOf === entry.changes;
    return entry;
  }

  /** Take before fetching a room whose count is unknown; give to `applyRoom` with its answer. */
  asOf(roomId) {
    return this.rooms.get(roomId)?.changes ?? 0;
  }

  /** The caller's cursor moves to `seq` (a read, or a message of theirs). */
  #moveCursor(entry, seq) {
    if (seq <= entry.cursor) return;
    entry.cursor = seq;
    entry.lastSeq = Math.max(entry.lastSeq, seq);
    if (!entry.known) this.#unsettle(entry);
    else if (seq >= entry.lastSeq) entry.deleted = 0;
    // Which of the deleted messages it passed is not known.
    else if (entry.deleted > 0) this.#unsettle(entry);
  }

  /**
   * One event's `data`. Returns the id of the room whose count may have
   * changed, or null; `known: false` on the entry says the count is unknown
   * (fetch the room and `applyRoom` it, see `unknownRooms`).
   */
  applyEvent(data) {
    if (this.deleted.has(eventRoomId(data))) return null;
    switch (data.type) {
      case 'message': {
        const { roomId, seq, authorId } = data.message;
        const entry = this.#entry(roomId);
        entry.lastSeq = Math.max(entry.lastSeq, seq);
        if (authorId === this.me) this.#moveCursor(entry, seq);
        return roomId;
      }
      case 'message_deleted': {
        const { roomId, seq, authorId } = data.message;
        const entry = this.rooms.get(roomId);
        // Whether the count already leaves it out (a snapshot taken after
        // the deletion, an event seen twice) cannot be told: ask the server.
        if (!entry || authorId === this.me || seq <= entry.cursor) return null;
        this.#unsettle(entry);
        return roomId;
      }
      case 'read': {
        if (data.userId !== this.me) return null;
        const entry = this.#entry(data.roomId);
        this.#moveCursor(entry, data.lastReadSeq);
        return data.roomId;
      }
      case 'room': {
        const { room, change, userId } = data;
        if (change === 'deleted') {
          this.rooms.delete(room.id);
          this.deleted.add(room.id);
          return room.id;
        }
        if (change === 'member_removed' && userId === this.me && !this.admin) {
          this.rooms.delete(room.id);
          return room.id;
        }
        const entry = this.applyRoom(room);
        // A new room has no messages to have read; one joined may have.
        if (change === 'created' && !entry.known && entry.lastSeq === 0) entry.known = true;
        return room.id;
      }
      default:
        return null;
    }
  }

  /**
   * Rooms whose count is unknown: fetch each, taking `asOf(id)` first, and
   * `applyRoom(room, asOf)` the answer. A room changed while its fetch was
   * under way stays unknown: fetch it again.
   */
  unknownRooms() {
    return [...this.rooms].filter(([, entry]) => !entry.known).map(([id]) => id);
  }

  unread(roomId) {
    const entry = this.rooms.get(roomId);
    return entry ? Math.max(0, entry.lastSeq - entry.cursor - entry.deleted) : 0;
  }

  get total() {
    let total = 0;
    for (const id of this.rooms.keys()) total += this.unread(id);
    return total;
  }
}

/**
 * Of two versions of one message (either may be absent), the later: a
 * deletion is final, else the later edit. Events and history pages can
 * bring an older version after a newer one (a page read before an edit
 * that arrives after it).
 */
export function newerVersion(a, b) {
  if (!a) return b ?? null;
  if (!b) return a;
  if (a.deletedAt || (!b.deletedAt && editedAt(a) >= editedAt(b))) return a;
  return b;
}

const editedAt = (message) => (message.editedAt ? Date.parse(message.editedAt) : 0);

/** Of two messages of a room (either may be absent), the later: the higher seq, or the newer version. */
function newer(a, b) {
  if (!a) return b ?? null;
  if (!b) return a;
  if (a.seq !== b.seq) return b.seq > a.seq ? b : a;
  return newerVersion(a, b);
}

/**
 * Who other than its author has read `message`: the user ids whose cursor
 * in `readCursors` (a room's, `{ userId: lastReadSeq }`) is at or past its
 * seq, sorted. Empty when nobody has; a seen receipt is `length > 0`, or a
 * check of who (the room's members, say).
 */
export function seenBy(readCursors, message) {
  if (!readCursors || !message) return [];
  return Object.entries(readCursors)
    .filter(([userId, seq]) => userId !== message.authorId && seq >= message.seq)
    .map(([userId]) => userId)
    .sort();
}

/** `readCursors` with `userId` at `seq` at least; the same object if they were there already. */
function advance(readCursors = {}, userId, seq) {
  return (readCursors[userId] ?? 0) >= seq ? readCursors : { ...readCursors, [userId]: seq };
}

/** A room with `message` as its last message's newer version, if it is that message; else the same room. */
function lastVersion(room, message) {
  if (room.lastMessage?.id !== message.id) return room;
  const lastMessage = newerVersion(room.lastMessage, message);
  return lastMessage === room.lastMessage ? room : { ...room, lastMessage };
}

/** Two `readCursors` as one: each reader at the further of their two cursors (they never move back). */
function mergeCursors(a = {}, b = {}) {
  const merged = { ...a };
  for (const [userId, seq] of Object.entries(b)) merged[userId] = Math.max(merged[userId] ?? 0, seq);
  return merged;
}

/** Whether an event's `data` is a room's deletion (the room's last event). */
const isDeletion = (data) => data?.type === 'room' && data.change === 'deleted';

/** The room an event of the log is about. */
function eventRoomId(data) {
  if (data.type === 'room') return data.room.id;
  if (data.type === 'read') return data.roomId;
  return data.message?.roomId;
}

/**
 * The room a `room` event leaves, members included: a new room's event lists
 * them; a membership change names only the member, applied to the list
 * known before. Null when that list is unknown (fetch the room), and for a
 * deletion, which leaves no room (drop it; there is nothing to fetch).
 */
export function roomAfter(known, { room, change, userId }) {
  if (change === 'deleted') return null;
  if (room.memberIds) return room;
  if (!known?.memberIds) return null;
  let memberIds = known.memberIds;
  if (change === 'member_added' && !memberIds.includes(userId)) memberIds = [...memberIds, userId];
  if (change === 'member_removed') memberIds = memberIds.filter((id) => id !== userId);
  return { ...room, memberIds };
}

/**
 * Every room the caller may see, live, with exact unread counts: a
 * ChatStream over all rooms, an UnreadCounter, and the rooms themselves in
 * order of activity. For badges, inboxes and the React hook; framework-free
 * (`subscribe`/`getSnapshot` fit React's `useSyncExternalStore`).
 *
 * The snapshot (`getSnapshot()`) is a new object after each change:
 * `{ status, totalUnread, rooms: [{ room, unread }], ready }`, newest
 * activity first.
 */
export class ChatRooms extends EventTarget {
  #stream;
  #counter = null;
  #rooms = new Map(); // id → { room, activity }
  #listeners = new Set();
  #state = { status: 'connecting', totalUnread: 0, rooms: [], ready: false };
  /** What changed since the last notice: the state is rebuilt once per burst. */
  #dirty = false;
  #changedRooms = new Set();
  #noticeDue = false;
  #fetching = new Set();
  #rank = 0;
  #options;
  #env;
  /** The timer of the next try at rooms whose fetch failed, and how many failed in a row. */
  #refetch = null;
  #fetchFailures = 0;
  #closed = false;

  constructor(options) {
    super();
    this.#options = { ...DEFAULTS, ...options };
    this.#env = { ...defaultEnvironment(), ...(options.environment ?? {}) };
    this.#stream = new ChatStream({ signals: true, ...options, roomId: null });
    this.#stream.addEventListener('status', (event) => this.#changed({ status: event.detail.status }));
    this.#stream.addEventListener('snapshot', (event) => this.#onSnapshot(event.detail));
    this.#stream.addEventListener('event', (event) => this.#onEvent(event.detail));
    this.subscribe = this.subscribe.bind(this);
    this.getSnapshot = this.getSnapshot.bind(this);
  }

  /** The stream underneath: for the events themselves. */
  get stream() {
    return this.#stream;
  }

  get api() {
    return this.#stream.api;
  }

  start() {
    return this.#stream.start();
  }

  close() {
    this.#closed = true;
    if (this.#refetch !== null) this.#env.clearTimeout(this.#refetch);
    this.#refetch = null;
    this.#stream.close();
    this.#listeners.clear();
  }

  subscribe(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  getSnapshot() {
    if (this.#dirty) this.#rebuild();
    return this.#state;
  }

  unread(roomId) {
    return this.#counter?.unread(roomId) ?? 0;
  }

  room(roomId) {
    return this.#rooms.get(roomId)?.room ?? null;
  }

  /** Marks `roomId` read up to its newest message; the count follows at once. */
  async markRead(roomId) {
    const seq = this.#counter?.rooms.get(roomId)?.lastSeq ?? 0;
    const state = await this.api.markRead(roomId, seq);
    if (this.#counter) {
      this.#counter.applyEvent({ type: 'read', roomId, userId: state.userId, lastReadSeq: state.lastReadSeq });
      this.#readTo(roomId, state.userId, state.lastReadSeq);
      this.#fetchUnknown();
    }
    this.#changed({}, [roomId]);
    return state;
  }

  #onSnapshot(snapshot) {
    // The snapshot comes after the stream knows the caller.
    const { sub, role } = this.#stream.claims;
    // A snapshot follows a reset too: it replaces what was known.
    this.#counter = new UnreadCounter({ me: sub, admin: role === 'admin' });
    this.#rooms.clear();
    this.#rank = 0;
    for (const room of snapshot.rooms) {
      this.#counter.applyRoom(room);
      // Below any event's id: events after the snapshot come first.
      this.#rooms.set(room.id, { room, activity: -(this.#rank += 1) });
    }
    this.#changed({ ready: true }, null);
  }

  #onEvent({ id, data }) {
    // Before the first snapshot: it will reflect this, or be followed by it again.
    if (!this.#counter) return;
    // Of a room deleted meanwhile (a stray replay): nothing of it comes back.
    if (this.#counter.deleted.has(eventRoomId(data))) return;
    let roomId = this.#counter.applyEvent(data);
    // Event ids rise with activity: they order the rooms (exactness past
    // 2^53 does not matter for that).
    const activity = Number(id);
    if (data.type === 'room') {
      const known = this.#rooms.get(roomId);
      const room = roomAfter(known?.room, data);
      // What the event does not carry, or may carry older (a replay shows
      // the room as it was then, its last message too): as known before.
      const before = known?.room ?? known?.learnt;
      const learnt = {
        lastMessage: newer(before?.lastMessage, data.room.lastMessage),
        readCursors: before?.readCursors ?? {},
      };
      if (!this.#counter.rooms.has(roomId)) this.#rooms.delete(roomId);
      else if (room) this.#rooms.set(roomId, { room: { ...room, ...learnt }, activity });
      else {
        // Its members are unknown here: learn the room.
        this.#counter.rooms.get(roomId).known = false;
        this.#rooms.set(roomId, { room: null, activity, learnt });
      }
    } else if (data.type === 'message') {
      const { message } = data;
      const known = this.#rooms.get(roomId);
      // Posting reads the room: the author's cursor is at their message.
      const learn = (what) => ({
        ...what,
        lastMessage: newer(what?.lastMessage, message),
        readCursors: advance(what?.readCursors, message.authorId, message.seq),
      });
      if (known?.room) {
        this.#rooms.set(roomId, { room: learn(known.room), activity });
      } else {
        // A room that moved while the snapshot was paged: learn it.
        this.#counter.rooms.get(roomId).known = false;
        this.#rooms.set(roomId, { room: null, activity, learnt: learn(known?.learnt) });
      }
    } else if (data.type === 'message_edited' || data.type === 'message_deleted') {
      // Not activity: the room keeps its place.
      if (this.#revise(data.message.roomId, (room) => lastVersion(room, data.message))) roomId = data.message.roomId;
    } else if (data.type === 'read') {
      if (this.#readTo(data.roomId, data.userId, data.lastReadSeq)) roomId = data.roomId;
    }
    if (roomId == null) return;
    this.#fetchUnknown();
    this.#changed({}, [roomId]);
  }

  /**
   * Changes what is known of a room, listed or still to be fetched (what
   * events taught of it: `lastMessage`, `readCursors`), keeping its place.
   * Whether anything changed.
   */
  #revise(roomId, revise) {
    const entry = this.#rooms.get(roomId);
    if (!entry) return false;
    const key = entry.room ? 'room' : 'learnt';
    const before = entry[key] ?? {};
    const after = revise(before);
    if (after === before) return false;
    this.#rooms.set(roomId, { ...entry, [key]: after });
    return true;
  }

  #readTo(roomId, userId, seq) {
    return this.#revise(roomId, (room) => {
      const readCursors = advance(room.readCursors, userId, seq);
      return readCursors === room.readCursors ? room : { ...room, readCursors };
    });
  }

  #fetchUnknown() {
    for (const roomId of this.#counter.unknownRooms()) {
      if (this.#fetching.has(roomId)) continue;
      this.#fetching.add(roomId);
      const counter = this.#counter;
      const asOf = counter.asOf(roomId);
      this.api.room(roomId).then((room) => {
        // Left, or a new snapshot, meanwhile: what the fetch says is stale.
        if (counter !== this.#counter || !counter.rooms.has(roomId)) return;
        this.#fetchFailures = 0;
        counter.applyRoom(room, asOf);
        const known = this.#rooms.get(roomId);
        if (known) {
          // The answer may be older or newer than the events since: each
          // reader's cursor at its furthest, the last message's newest version.
          const before = known.room ?? known.learnt ?? {};
          const merged = {
            ...(known.room ?? room),
            lastMessage: newer(room.lastMessage, before.lastMessage),
            readCursors: mergeCursors(room.readCursors, before.readCursors),
          };
          this.#rooms.set(roomId, { room: merged, activity: known.activity });
        }
        this.#changed({}, [roomId]);
      }).catch((error) => {
        if (counter !== this.#counter || !counter.rooms.has(roomId)) return;
        if (error?.status === 404) {
          // Not the caller's room (any more): it counts for nothing.
          counter.rooms.delete(roomId);
          this.#rooms.delete(roomId);
          this.#changed({}, [roomId]);
          return;
        }
        // Not reachable now: its count stays unknown (all of it unread)
        // until a try succeeds, so try again soon, not only at the next event.
        this.#refetchLater(error);
      }).finally(() => {
        this.#fetching.delete(roomId);
        // Changed while the fetch was under way, which may have read it
        // before: fetch it again (not after a failure: that waits its turn).
        const again = counter === this.#counter && counter.rooms.get(roomId)?.known === false;
        if (again && this.#refetch === null && !this.#closed) this.#fetchUnknown();
      });
    }
  }

  #refetchLater(error) {
    if (this.#refetch !== null || this.#closed) return;
    const delay = retryDelay(error, this.#fetchFailures, this.#options, this.#env.random);
    this.#fetchFailures += 1;
    this.#refetch = this.#env.setTimeout(() => {
      this.#refetch = null;
      if (this.#counter && !this.#closed) this.#fetchUnknown();
    }, delay);
  }

  /**
   * Notes a change; listeners hear of it once per burst (a poll's page of
   * events, a stream's chunk), in a microtask, and the state is rebuilt
   * when read.
   */
  #changed(patch, roomIds = []) {
    this.#state = { ...this.#state, ...patch };
    this.#dirty = true;
    if (roomIds === null) this.#changedRooms = null;
    else if (this.#changedRooms) for (const id of roomIds) this.#changedRooms.add(id);
    if (this.#noticeDue) return;
    this.#noticeDue = true;
    queueMicrotask(() => {
      this.#noticeDue = false;
      const changed = this.#changedRooms;
      this.#changedRooms = new Set();
      for (const listener of this.#listeners) listener();
      this.dispatchEvent(new CustomEvent('change', { detail: { roomIds: changed && [...changed] } }));
    });
  }

  #rebuild() {
    const counter = this.#counter;
    const rooms = [...this.#rooms.values()]
      .filter((entry) => entry.room)
      .sort((a, b) => (b.activity ?? -Infinity) - (a.activity ?? -Infinity))
      .map(({ room }) => ({ room, unread: counter?.unread(room.id) ?? 0 }));
    this.#state = { ...this.#state, rooms, totalUnread: counter?.total ?? 0 };
    this.#dirty = false;
  }
}

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
  #api;
  #users = new Map(); // userId → { online, version }
  #watched = new Set();
  #cleanups = [];
  #closed = false;

  /** `api`: a ChatApi (or the stream's); `stream`: a ChatStream to follow, optional. */
  constructor({ api, stream = null } = {}) {
    super();
    this.#api = api ?? stream?.api ?? null;
    if (stream) {
      const on = (type, handler) => {
        stream.addEventListener(type, handler);
        this.#cleanups.push(() => stream.removeEventListener(type, handler));
      };
      on('signal', (event) => this.apply(event.detail.data));
      on('status', (event) => event.detail.status === 'live' && this.refresh());
      on('reset', () => this.refresh());
    }
  }

  /** Whether the user is online: true, false, or null while unknown. */
  online(userId) {
    return this.#users.get(userId)?.online ?? null;
  }

  /** The version held for the user (0 when unknown). */
  version(userId) {
    return this.#users.get(userId)?.version ?? 0;
  }

  /** Adds users to follow and fetches the state of those new here. */
  watch(userIds) {
    const fresh = [...new Set(userIds)].filter((id) => !this.#watched.has(id));
    for (const id of fresh) this.#watched.add(id);
    return fresh.length > 0 ? this.refresh(fresh) : Promise.resolve();
  }

  /**
   * Fetches the snapshot of `userIds` (the watched ones by default), in
   * batches the server accepts. A failure is left for the next reconnect:
   * the signals meanwhile still apply.
   */
  async refresh(userIds = [...this.#watched]) {
    if (!this.#api || this.#closed) return;
    const batches = [];
    for (let i = 0; i < userIds.length; i += PRESENCE_BATCH) batches.push(userIds.slice(i, i + PRESENCE_BATCH));
    await Promise.all(batches.map((batch) => this.#api.presence(batch)
      .then((snapshot) => this.applySnapshot(snapshot))
      .catch(() => {})));
  }

  /** A `presence` signal (others are ignored); whether it changed anything. */
  apply(data) {
    if (data?.type !== 'presence' || this.#closed) return false;
    const changed = this.#take(data.userId, data.online, data.version);
    if (changed) this.#changed([data.userId]);
    return changed;
  }

  /** A `GET /api/chat/presence` answer; the user ids whose state changed. */
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

  /** Older news than what is held changes nothing; whether the state shown changed. */
  #take(userId, online, version) {
    const held = this.#users.get(userId);
    if (held && held.version >= version) return false;
    this.#users.set(userId, { online: Boolean(online), version });
    return !held || held.online !== Boolean(online);
  }

  #changed(userIds) {
    this.dispatchEvent(new CustomEvent('change', { detail: { userIds } }));
  }
}

/**
 * Who is typing, per room: a `typing` signal holds for its `expiresInMs`
 * unless renewed, and ends sooner with `typing: false` or a message from
 * that user. The caller's own signals are skipped (`me`). Given a `stream`,
 * it follows its signals and messages. Emits `change` with `{ roomId }`.
 * Its timers go with `close()`.
 */
export class Typing extends EventTarget {
  #env;
  #me;
  #rooms = new Map(); // roomId → Map(userId → timer)
  #cleanups = [];
  #closed = false;

  constructor({ me = null, stream = null, environment = {} } = {}) {
    super();
    this.#me = me;
    this.#env = { ...defaultEnvironment(), ...environment };
    if (stream) {
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

  /** Who types in `roomId` now, in the order they began. */
  typists(roomId) {
    return [...(this.#rooms.get(roomId)?.keys() ?? [])];
  }

  /** A `typing` signal (others are ignored). */
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

  /** A message arrived: its author has stopped typing it. */
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

  #stop(roomId, userId) {
    const room = this.#rooms.get(roomId);
    if (!room?.has(userId)) return;
    this.#env.clearTimeout(room.get(userId));
    room.delete(userId);
    this.#forget(roomId);
  }

  #forget(roomId) {
    if (this.#rooms.get(roomId)?.size === 0) this.#rooms.delete(roomId);
    this.#changed(roomId);
  }

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
  #api;
  #env;
  #renew;
  #room;
  /** The room told that the caller types, and when it was last told. */
  #typingIn = null;
  #sentAt = -Infinity;

  /** `room`: the room id, or a function giving the room the box writes to now. */
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
