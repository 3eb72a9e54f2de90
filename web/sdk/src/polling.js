// The fallback: long-polling the same event log (`GET /api/chat/events`)
// when streaming fails or is held on the way, with probes that try the
// stream again (sse.js) and hand back to it once it proves itself.

import { ChatError } from './api.js';
import { retryDelay } from './common.js';

/** @typedef {import('./stream.js').View} View */

/** A view's poll loop and the probes scheduled while it runs. */
export class Polling {
  /** @type {View} */
  #view;
  /** The poll loop, while one runs: its round, and its request in flight. */
  #pollRound = 0;
  #polling = false;
  /** @type {{ controller: AbortController } | null} */
  #poll = null;

  /** @param {View} view */
  constructor(view) {
    this.#view = view;
  }

  /** Whether the poll loop runs. */
  get active() {
    return this.#polling;
  }

  /** Polls from now on, and tries the stream again from time to time. */
  start() {
    const view = this.#view;
    view.cancel('reconnect');
    view.mode = 'polling';
    view.setStatus('polling');
    if (!this.#polling) this.#pollLoop();
    this.#scheduleProbe();
  }

  #scheduleProbe() {
    const view = this.#view;
    // Never in lockstep with other clients, never later than the interval.
    const delay = Math.floor(view.options.streamRetryInterval * (0.5 + view.env.random() / 2));
    view.later('probe', delay, () => {
      if (view.mode !== 'polling') return;
      if (!view.transport.probe) view.transport.connect('probe');
      this.#scheduleProbe();
    });
  }

  /** Stops the loop, its request in flight, and the probes. */
  stop() {
    this.#polling = false;
    this.#pollRound += 1;
    this.#poll?.controller.abort();
    this.#poll = null;
    this.#view.transport.dropProbe();
    for (const name of ['poll', 'probe', 'probe-watchdog']) this.#view.cancel(name);
  }

  /** Aborts the request in flight (the view closes). */
  abort() {
    this.#poll?.controller.abort();
  }

  async #pollLoop() {
    const view = this.#view;
    this.#polling = true;
    const round = ++this.#pollRound;
    const polling = () => !view.closed && round === this.#pollRound;
    for (let failures = 0; polling();) {
      const poll = { controller: new AbortController() };
      this.#poll = poll;
      const started = view.env.now();
      try {
        const page = await this.#pollOnce(poll.controller.signal);
        if (!polling()) return;
        failures = 0;
        view.target.stats.polls += 1;
        for (const { id, data } of page.events) view.onLogEvent(id, data);
        view.advance(page.lastEventId);
        // A server that did not wait (it is shutting down, or waits little):
        // no tighter loop than `pollInterval`.
        const quick = view.env.now() - started < view.options.pollInterval;
        if (page.events.length === 0 && !page.hasMore && quick) {
          await view.sleep('poll', view.options.pollInterval);
        }
      } catch (error) {
        if (!polling() || poll.controller.signal.aborted) return;
        if (error instanceof ChatError && !error.retryable) {
          view.fatal(error);
          return;
        }
        await view.sleep('poll', retryDelay(error, failures, view.options, view.env.random));
        failures += 1;
      }
    }
  }

  /**
   * @param {AbortSignal} signal
   * @returns {Promise<import('../types/chat-client.js').EventPage>}
   */
  async #pollOnce(signal) {
    const view = this.#view;
    const query = new URLSearchParams({ wait: String(view.options.pollWait), limit: '500' });
    if (view.target.lastEventId != null) query.set('after', view.target.lastEventId);
    if (view.options.roomId != null) query.set('roomId', view.options.roomId);
    const page = await view.api.request('GET', `/api/chat/events?${query}`, undefined, {
      signal,
      timeout: view.options.pollWait * 1000 + view.options.connectTimeout,
    });
    if (!Array.isArray(page?.events)) throw new ChatError('not an answer of /api/chat/events');
    return page;
  }
}
