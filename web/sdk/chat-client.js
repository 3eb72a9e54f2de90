// chat-client: a dependency-free browser client for chat-server's live streams.
//
// It keeps a view live without refreshes: it loads a snapshot, streams every
// change after it, reconnects with backoff and resumes by event id (nothing
// lost, nothing twice), falls back to polling when streaming fails, pauses in
// long-hidden tabs, and shares one stream between all tabs of a browser.
//
// Why fetch and not EventSource: with fetch the token travels in a header
// (out of URLs and server logs), `Last-Event-ID` can be sent on every
// connection we open, and 401/429/503 with Retry-After are visible, where
// EventSource hides every failure behind a bare `error` event.

export const DEFAULTS = Object.freeze({
  heartbeatTimeout: 60_000, // silence that means the stream is dead
  backoffInitial: 1_000, // first reconnect delay ceiling; doubles per failure
  backoffMax: 16_000,
  maxAttempts: 5, // failed connects before falling back to polling
  pollInterval: 5_000,
  streamRetryInterval: 30_000, // while polling, how often to try streaming again
  pauseWhenHiddenAfter: 300_000,
  shareAcrossTabs: true,
});

/** Full jitter: a delay uniformly in [0, min(max, initial * 2^attempt)]. */
export function backoffDelay(attempt, options = DEFAULTS, random = Math.random) {
  const ceiling = Math.min(options.backoffMax, options.backoffInitial * 2 ** attempt);
  return Math.floor(random() * ceiling);
}

/** Event ids are decimal strings that may exceed 2^53: compare them as text. */
export function isNewerId(id, than) {
  if (than == null || than === '') return true;
  if (id.length !== than.length) return id.length > than.length;
  return id > than;
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

/** Reads the subject of a JWT without verifying it (the server does that). */
function tokenSubject(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload)).sub ?? '';
  } catch {
    return '';
  }
}

function browserEnvironment() {
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

class RetryLater extends Error {
  constructor(message, delay) {
    super(message);
    this.delay = delay;
  }
}

/**
 * A live view of every room the caller may see (no `roomId`), or of one room.
 *
 * Events (all `CustomEvent`s; read `event.detail`):
 * - `snapshot`: `{ rooms, totalUnread, lastEventId }` or, for a room,
 *   `{ messages, lastEventId }`; on start, after a `reset`, and while polling;
 * - `event`: `{ id, data }` for each stream event (`data.type` is `message`,
 *   `read` or `room`), once each and in order; while polling a room, new
 *   messages arrive as `{ id: null, data: { type: 'message', message } }`;
 * - `reset`: the server could not resume; a fresh snapshot follows;
 * - `status`: `{ status }`, one of connecting, live, reconnecting, polling,
 *   paused, offline.
 */
export class ChatStream extends EventTarget {
  #options;
  #env;
  #timers = new Map();
  #cleanups = [];
  #controller = null;
  #attempt = 0;
  #needFreshToken = false;
  #closed = false;
  #leader = false;
  #channel = null;
  #releaseLock = null;
  #etag = null;
  #lastSeq = 0;
  #wasLive = false;

  constructor(options) {
    super();
    if (typeof options?.getToken !== 'function') throw new TypeError('getToken is required');
    this.#options = { ...DEFAULTS, baseUrl: '', roomId: null, ...options };
    this.#env = { ...browserEnvironment(), ...(options.environment ?? {}) };
    this.status = 'connecting';
    this.lastEventId = null;
    this.stats = { reconnects: 0, lastEventAt: null, polls: 0 };
  }

  get isLeader() {
    return this.#leader;
  }

  /** Loads the snapshot and goes live. Resolves once the first snapshot is out. */
  async start() {
    this.#listenToPage();
    const { locks, BroadcastChannel } = this.#env;
    if (this.#options.shareAcrossTabs && locks && BroadcastChannel) {
      const token = await this.#options.getToken({ forceRefresh: false });
      const name = [
        'chat-stream',
        new URL(this.#options.baseUrl || '/', this.#env.window?.location?.href ?? 'http://x/').origin,
        tokenSubject(token),
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
        this.#connect();
        // Held until close(): the next tab in line takes over then.
        return new Promise((resolve) => (this.#releaseLock = resolve));
      });
    } else {
      await this.#loadSnapshot();
      this.#leader = true;
      this.#connect();
    }
  }

  /** Stops everything: no timer, listener, lock or connection is left. */
  close() {
    this.#closed = true;
    this.#controller?.abort();
    for (const id of this.#timers.values()) this.#env.clearTimeout(id);
    this.#timers.clear();
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
    this.#channel?.close();
    this.#releaseLock?.();
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

  #cancel(name) {
    const id = this.#timers.get(name);
    if (id !== undefined) this.#env.clearTimeout(id);
    this.#timers.delete(name);
  }

  /** Names of the timers now pending (for tests and debugging). */
  pendingTimers() {
    return [...this.#timers.keys()];
  }

  #setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.#emit('status', { status });
    this.#relay({ kind: 'status', status });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #relay(message) {
    if (this.#leader && this.#channel) this.#channel.postMessage(message);
  }

  // ---- followers (tabs that share the leader's stream) ---------------------

  #onChannel(message) {
    if (this.#closed) return;
    if (this.#leader) {
      // A tab just joined: tell it the status it missed.
      if (message.kind === 'hello') this.#relay({ kind: 'status', status: this.status });
      // A visible tab needs the stream this hidden leader paused.
      if (message.kind === 'resume' && this.status === 'paused') this.#resume();
      return;
    }
    if (message.kind === 'status') {
      this.status = message.status;
      this.#emit('status', { status: message.status });
      if (message.status === 'paused' && this.#env.document?.visibilityState === 'visible') {
        this.#channel.postMessage({ kind: 'resume' });
      }
    } else if (message.kind === 'event') {
      this.#deliver(message.id, message.data);
    } else if (message.kind === 'snapshot') {
      this.#applySnapshot(message.snapshot);
    }
  }

  // ---- snapshots ---------------------------------------------------------------

  async #authorizedFetch(path, init = {}) {
    for (let attempt = 0; ; attempt += 1) {
      const token = await this.#options.getToken({ forceRefresh: this.#needFreshToken });
      this.#needFreshToken = false;
      const headers = { ...(init.headers ?? {}), Authorization: `Bearer ${token}` };
      const response = await this.#env.fetch(`${this.#options.baseUrl}${path}`, {
        ...init,
        headers,
        cache: 'no-store',
      });
      if (response.status === 401 && attempt === 0) {
        this.#needFreshToken = true;
        continue;
      }
      return response;
    }
  }

  #snapshotPath() {
    const room = this.#options.roomId;
    return room == null
      ? '/api/chat/rooms'
      : `/api/chat/rooms/${encodeURIComponent(room)}/messages?limit=200`;
  }

  async #loadSnapshot() {
    const response = await this.#authorizedFetch(this.#snapshotPath());
    if (!response.ok) throw new RetryLater(`snapshot failed: ${response.status}`);
    this.#etag = response.headers.get('etag');
    const snapshot = await response.json();
    this.#applySnapshot(snapshot);
    this.#relay({ kind: 'snapshot', snapshot });
  }

  #applySnapshot(snapshot) {
    if (snapshot.lastEventId != null && isNewerId(snapshot.lastEventId, this.lastEventId)) {
      this.lastEventId = snapshot.lastEventId;
    }
    for (const message of snapshot.messages ?? []) this.#lastSeq = Math.max(this.#lastSeq, message.seq);
    this.#emit('snapshot', snapshot);
  }

  // ---- the stream ------------------------------------------------------------

  async #connect({ probe = false } = {}) {
    if (this.#closed) return;
    if (!probe) this.#setStatus(this.#wasLive || this.#attempt > 0 ? 'reconnecting' : 'connecting');
    const controller = new AbortController();
    if (!probe) this.#controller = controller;
    try {
      const query = this.#options.roomId == null ? '' : `?roomId=${encodeURIComponent(this.#options.roomId)}`;
      const headers = { Accept: 'text/event-stream' };
      if (this.lastEventId != null) headers['Last-Event-ID'] = this.lastEventId;
      const response = await this.#authorizedFetch(`/api/chat/sse${query}`, {
        headers,
        signal: controller.signal,
      });
      if (!response.ok) {
        const retryAfter = Number(response.headers.get('retry-after'));
        throw new RetryLater(
          `stream refused: ${response.status}`,
          retryAfter > 0 ? retryAfter * 1000 : undefined,
        );
      }
      if (probe) {
        // Streaming works again: stop polling before anything is delivered.
        this.#stopPolling();
        this.#controller?.abort();
        this.#controller = controller;
      }
      await this.#read(response, controller);
      // The server ended the stream (shutdown, expiry): reconnect at once.
      if (!controller.signal.aborted) this.#scheduleReconnect(0);
    } catch (error) {
      if (this.#closed || controller.signal.aborted) return;
      if (probe) return; // still polling; the next probe will try again
      this.#failed(error);
    }
  }

  async #read(response, controller) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser((event) => this.#onStreamEvent(event, controller));
    this.#armWatchdog(controller);
    for (;;) {
      const { value, done } = await reader.read();
      if (done || controller.signal.aborted) return;
      if (this.status !== 'live') {
        this.#attempt = 0;
        this.#wasLive = true;
        this.#setStatus('live');
      }
      this.#armWatchdog(controller);
      parser.push(decoder.decode(value, { stream: true }));
    }
  }

  #armWatchdog(controller) {
    this.#later('watchdog', this.#options.heartbeatTimeout, () => {
      // Silence: the connection is dead even if it never closed.
      controller.abort();
      this.#failed(new Error('no heartbeat'));
    });
  }

  #onStreamEvent({ id, hasId, data }, controller) {
    let parsed;
    try {
      parsed = JSON.parse(data);
    } catch {
      return;
    }
    this.stats.lastEventAt = this.#env.now();
    switch (parsed.type) {
      case 'heartbeat':
        return;
      case 'auth_expired':
        this.#needFreshToken = true;
        return;
      case 'reset':
        if (hasId) this.lastEventId = id;
        this.#emit('reset', parsed);
        this.#relay({ kind: 'event', id, data: parsed });
        this.#loadSnapshot().catch(() => {
          controller.abort();
          this.#failed(new Error('snapshot after reset failed'));
        });
        return;
      default:
        this.#deliver(hasId ? id : null, parsed);
    }
  }

  /** Passes an event on once: ids only ever move forward. */
  #deliver(id, data) {
    if (id != null) {
      if (!isNewerId(id, this.lastEventId)) return;
      this.lastEventId = id;
    }
    if (data.type === 'reset') {
      this.#emit('reset', data);
      return;
    }
    if (data.type === 'message') this.#lastSeq = Math.max(this.#lastSeq, data.message.seq);
    this.#emit('event', { id, data });
    this.#relay({ kind: 'event', id, data });
  }

  #failed(error) {
    if (this.#closed) return;
    this.#cancel('watchdog');
    this.#attempt += 1;
    this.stats.reconnects += 1;
    if (this.#attempt >= this.#options.maxAttempts) {
      this.#startPolling();
    } else {
      this.#scheduleReconnect(error?.delay ?? backoffDelay(this.#attempt - 1, this.#options, this.#env.random));
    }
  }

  #scheduleReconnect(delay) {
    this.#cancel('watchdog');
    this.#setStatus('reconnecting');
    this.#later('reconnect', delay, () => this.#connect());
  }

  // ---- fallback polling ---------------------------------------------------------

  #startPolling() {
    this.#cancel('reconnect');
    this.#setStatus('polling');
    const poll = async () => {
      this.#later('poll', this.#options.pollInterval, poll);
      this.stats.polls += 1;
      try {
        await this.#pollOnce();
      } catch {
        // Keep polling; the next round may work.
      }
    };
    const probe = () => {
      this.#later('probe', this.#options.streamRetryInterval, probe);
      this.#connect({ probe: true });
    };
    this.#later('poll', this.#options.pollInterval, poll);
    this.#later('probe', this.#options.streamRetryInterval, probe);
  }

  #stopPolling() {
    this.#cancel('poll');
    this.#cancel('probe');
    this.#attempt = 0;
  }

  async #pollOnce() {
    if (this.#options.roomId != null) {
      const room = encodeURIComponent(this.#options.roomId);
      const response = await this.#authorizedFetch(
        `/api/chat/rooms/${room}/messages?after=${this.#lastSeq}&limit=200`,
      );
      if (!response.ok || this.status !== 'polling') return;
      const page = await response.json();
      for (const message of page.messages) this.#deliver(null, { type: 'message', message });
      if (page.lastEventId != null && isNewerId(page.lastEventId, this.lastEventId)) {
        this.lastEventId = page.lastEventId;
      }
      return;
    }
    const headers = this.#etag ? { 'If-None-Match': this.#etag } : {};
    const response = await this.#authorizedFetch('/api/chat/rooms', { headers });
    if (response.status === 304 || !response.ok || this.status !== 'polling') return;
    this.#etag = response.headers.get('etag');
    const snapshot = await response.json();
    this.#applySnapshot(snapshot);
    this.#relay({ kind: 'snapshot', snapshot });
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
      if (this.status === 'offline') this.#resume();
    });
  }

  #pause(status) {
    if (!this.#leader || this.#closed) return;
    this.#controller?.abort();
    for (const name of ['watchdog', 'reconnect', 'poll', 'probe']) this.#cancel(name);
    this.#setStatus(status);
  }

  #resume() {
    if (!this.#leader || this.#closed) return;
    this.#attempt = 0;
    this.#connect();
  }
}

/** Small helpers for the JSON API, with the same token source. */
export class ChatApi {
  constructor({ baseUrl = '', getToken, fetch = (...args) => globalThis.fetch(...args) }) {
    this.baseUrl = baseUrl;
    this.getToken = getToken;
    this.fetch = fetch;
  }

  async request(method, path, body) {
    const token = await this.getToken({ forceRefresh: false });
    const response = await this.fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) throw Object.assign(new Error(data?.error?.message ?? response.statusText), { status: response.status, data });
    return data;
  }

  rooms() {
    return this.request('GET', '/api/chat/rooms');
  }

  createRoom(name, memberIds = []) {
    return this.request('POST', '/api/chat/rooms', { name, memberIds });
  }

  messages(roomId, query = '') {
    return this.request('GET', `/api/chat/rooms/${encodeURIComponent(roomId)}/messages${query}`);
  }

  send(roomId, body, clientId = globalThis.crypto?.randomUUID?.()) {
    return this.request('POST', `/api/chat/rooms/${encodeURIComponent(roomId)}/messages`, { body, clientId });
  }

  markRead(roomId, seq) {
    return this.request('POST', `/api/chat/rooms/${encodeURIComponent(roomId)}/read`, { seq });
  }
}
