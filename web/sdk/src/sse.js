// The transport: Server-Sent Events read with fetch. `SseParser` reads the
// wire format; `SseTransport` opens a view's stream (or, while the fallback
// polls, a probe that takes over once bytes flow), watches it for silence,
// and reconnects with jittered backoff, handing over to the fallback
// (polling.js) when streams fail or are held on the way.
//
// Why fetch and not EventSource: with fetch the token travels in a header
// (out of URLs and server logs), `Last-Event-ID` can be sent on every
// connection we open, and 401/429/503 with Retry-After are visible, where
// EventSource hides every failure behind a bare `error` event.

import { ChatError, answerError } from './api.js';
import { backoffDelay, retryDelay } from './common.js';

/** @typedef {import('./stream.js').View} View */

/** Event types that are signals: never in the log, no id, not replayed. */
const SIGNALS = new Set(['typing', 'presence']);

/**
 * The SSE wire format, incrementally: feed it text, it calls `onEvent` with
 * `{ id, hasId, data }` for every event that carries data.
 */
export class SseParser {
  /** @param {(event: { id: string, hasId: boolean, data: string }) => void} onEvent */
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = '';
    /** @type {string[]} */
    this.data = [];
    this.lastEventId = '';
    this.hasId = false;
  }

  /** @param {string} text */
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

  /** @param {string} line */
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

/**
 * One stream: the `main` one, or a `probe` while polling. It is `answered`
 * once the server answered, `flowing` at its first bytes, `proven` when
 * bytes came again later; `retryIn` is the wait the server asked for.
 * @typedef {object} Connection
 * @property {'main' | 'probe'} role
 * @property {AbortController} controller
 * @property {boolean} answered
 * @property {boolean} flowing
 * @property {boolean} proven
 * @property {number} openedAt
 * @property {number | null} retryIn
 */

/** A view's streams: connecting, reading, watching, reconnecting. */
export class SseTransport {
  /** @type {View} */
  #view;
  /**
   * The stream that delivers, and while polling a probe that may take over.
   * @type {Connection | null}
   */
  main = null;
  /** @type {Connection | null} */
  probe = null;
  /** Consecutive failed stream connects. */
  attempt = 0;
  /** Streams in a row that the server ended soon after they opened. */
  #quickEnds = 0;

  /** @param {View} view */
  constructor(view) {
    this.#view = view;
  }

  /** Connects again at once, as if nothing had failed (the page is back). */
  restart() {
    this.attempt = 0;
    this.connect('main');
  }

  /** Gives up the main stream and any reconnect to come (the page pauses). */
  drop() {
    this.main?.controller.abort();
    this.main = null;
    for (const name of ['watchdog', 'reconnect']) this.#view.cancel(name);
  }

  /** Ends the probe, if one runs (polling stops). */
  dropProbe() {
    this.probe?.controller.abort();
    this.probe = null;
  }

  /** Aborts every stream (the view closes). */
  abort() {
    for (const connection of [this.main, this.probe]) connection?.controller.abort();
  }

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
   * @param {'main' | 'probe'} role
   */
  async connect(role) {
    const view = this.#view;
    if (view.closed || !view.tabs.leader) return;
    /** @type {Connection} */
    const connection = {
      role, controller: new AbortController(), answered: false, flowing: false, proven: false,
      openedAt: view.env.now(), retryIn: null,
    };
    if (role === 'main') {
      this.main?.controller.abort();
      this.main = connection;
      view.mode = 'stream';
      view.setStatus(view.wasLive || this.attempt > 0 ? 'reconnecting' : 'connecting');
    } else {
      this.probe = connection;
    }
    this.#watch(connection, view.options.connectTimeout);
    try {
      const params = new URLSearchParams();
      if (view.options.roomId != null) params.set('roomId', view.options.roomId);
      if (view.options.signals) params.set('signals', 'true');
      const query = params.toString() ? `?${params}` : '';
      /** @type {Record<string, string>} */
      const headers = { Accept: 'text/event-stream' };
      if (view.target.lastEventId != null) headers['Last-Event-ID'] = view.target.lastEventId;
      const response = await view.api.fetch(`/api/chat/sse${query}`, {
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
      if (view.closed || connection.controller.signal.aborted) return;
      this.#lost(connection, { error });
    }
  }

  /**
   * @param {Connection} connection
   * @param {number} ms
   */
  #watch(connection, ms) {
    this.#view.later(connection.role === 'main' ? 'watchdog' : 'probe-watchdog', ms, () => {
      connection.controller.abort();
      this.#lost(connection, {});
    });
  }

  /**
   * @param {Response} response
   * @param {Connection} connection
   */
  async #read(response, connection) {
    const reader = /** @type {ReadableStream<Uint8Array>} */ (response.body).getReader();
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
        if (connection !== this.main) return; // superseded meanwhile
        this.#watch(connection, this.#view.options.heartbeatTimeout);
        parser.push(decoder.decode(value, { stream: true }));
      }
    } finally {
      connection.controller.signal.removeEventListener('abort', abort);
    }
  }

  /**
   * The first bytes of a stream: it delivers from now on.
   * @param {Connection} connection
   */
  #flowing(connection) {
    const view = this.#view;
    connection.flowing = true;
    if (connection.role === 'probe') {
      // It resumes from an id no newer than anything polled since; repeats
      // are dropped by id. Polling goes on until the stream proves itself.
      this.probe = null;
      for (const name of ['probe', 'probe-watchdog']) view.cancel(name);
      this.main?.controller.abort();
      connection.role = 'main';
      this.main = connection;
    }
    view.mode = 'stream';
    view.wasLive = true;
    view.setStatus('live');
  }

  /**
   * Bytes again after the first: the path passes data as it comes.
   * @param {Connection} connection
   */
  #proven(connection) {
    connection.proven = true;
    this.attempt = 0;
    if (this.#view.fallback.active) this.#view.fallback.stop();
  }

  /**
   * @param {{ id: string, hasId: boolean, data: string }} event
   * @param {Connection} connection
   */
  #onStreamEvent({ id, hasId, data }, connection) {
    const view = this.#view;
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
      view.api.refreshToken();
      return;
    }
    // Not in the log: no id to dedupe by or resume from.
    if (SIGNALS.has(parsed.type) && !hasId) {
      view.emit('signal', { data: parsed });
      view.tabs.relay({ kind: 'signal', data: parsed });
      return;
    }
    view.onLogEvent(hasId ? id : null, parsed);
  }

  /**
   * A connection failed, went silent, or ended.
   * @param {Connection} connection
   * @param {{ error?: unknown, ended?: boolean }} [how]
   */
  #lost(connection, { error, ended = false } = {}) {
    const view = this.#view;
    if (view.closed) return;
    if (connection.role === 'probe') {
      view.cancel('probe-watchdog');
      if (this.probe === connection) this.probe = null;
      connection.controller.abort();
      return; // still polling; the next probe tries again
    }
    if (connection !== this.main) return; // already replaced
    view.cancel('watchdog');
    this.main = null;
    connection.controller.abort();
    if (error instanceof ChatError && !error.retryable) {
      view.fatal(error);
      return;
    }
    view.target.stats.reconnects += 1;
    if (connection.retryIn != null) {
      // Ended by the server until its store answers again: a failure, with
      // the server's own (spread) delay.
      this.attempt += 1;
      this.#scheduleReconnect(Math.max(connection.retryIn, view.options.reconnectFloor));
      return;
    }
    if (ended && connection.proven) {
      // Not a failure (a shutdown, a token to renew): reconnect soon, spread
      // a little, never in a tight loop; and if streams keep ending soon
      // after they open, wait longer each time.
      const lived = view.env.now() - connection.openedAt;
      this.#quickEnds = lived >= view.options.steadyStream ? 0 : this.#quickEnds + 1;
      this.attempt = 0;
      const spread = backoffDelay(this.#quickEnds, view.options, view.env.random);
      this.#scheduleReconnect(view.options.reconnectFloor + spread);
      return;
    }
    this.attempt += 1;
    // Timed out before it was proven (no answer, no first bytes, or nothing
    // after them): something on the way holds the stream back. Poll now,
    // and let the probes find when streaming works again.
    const held = !connection.proven && !error;
    if (held || view.fallback.active || this.attempt >= view.options.maxAttempts) {
      view.fallback.start();
    } else {
      this.#scheduleReconnect(retryDelay(error, this.attempt - 1, view.options, view.env.random));
    }
  }

  /** @param {number} delay */
  #scheduleReconnect(delay) {
    this.#view.setStatus('reconnecting', { retryIn: delay });
    this.#view.later('reconnect', delay, () => this.connect('main'));
  }
}
