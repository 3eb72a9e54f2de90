// Tab sharing: one connection per browser for the same server, user and
// room. The tab holding a Web Lock leads (it connects, and relays what it
// hears over a BroadcastChannel); the others follow, and the next in line
// takes over when the leader closes.

/** @typedef {import('./stream.js').View} View */
/** @typedef {import('../types/chat-client.js').Channel} Channel */

/** A view's place among the tabs: leader or follower. */
export class TabSharing {
  /** @type {View} */
  #view;
  /** @type {Channel | null} */
  #channel = null;
  /** @type {((value?: unknown) => void) | null} */
  #releaseLock = null;
  /** The lock's and the channel's name. */
  #name = '';
  /** Whether this tab holds the connection (every view does that shares with no tab). */
  leader = false;

  /** @param {View} view */
  constructor(view) {
    this.#view = view;
  }

  /** Whether this view shares with other tabs (it has a channel). */
  get sharing() {
    return this.#channel !== null;
  }

  /**
   * Joins the tabs of this server, user and room, if sharing is on and the
   * platform can (Web Locks and BroadcastChannel); whether it did. Call
   * once the caller is known, before loading the snapshot.
   * @returns {boolean}
   */
  join() {
    const view = this.#view;
    const { locks, BroadcastChannel } = view.env;
    if (!(view.options.shareAcrossTabs && locks && BroadcastChannel)) return false;
    this.#name = [
      'chat-stream',
      new URL(view.options.baseUrl || '/', view.env.window?.location?.href ?? 'http://x/').origin,
      /** @type {{ sub: string }} */ (view.target.claims).sub,
      view.options.roomId ?? '*',
    ].join('|');
    // Listen before loading, so nothing the leader relays falls in between.
    this.#channel = new BroadcastChannel(this.#name);
    this.#channel.onmessage = (message) => this.#onChannel(message.data);
    // Ask the leader, if there is one, where things stand.
    this.#channel.postMessage({ kind: 'hello' });
    return true;
  }

  /**
   * Waits in line for the lock: holding it, this tab leads (`lead()`),
   * until it closes.
   * @param {() => void} lead
   */
  queue(lead) {
    const view = this.#view;
    /** @type {NonNullable<View['env']['locks']>} */ (view.env.locks).request(this.#name, () => {
      if (view.closed) return undefined;
      this.leader = true;
      lead();
      // Held until close(): the next tab in line takes over then.
      return new Promise((resolve) => (this.#releaseLock = resolve));
    });
  }

  /**
   * Tells the following tabs, if this one leads.
   * @param {object} message
   */
  relay(message) {
    if (this.leader && this.#channel) this.#channel.postMessage(message);
  }

  /** Asks the leader to resume the connection it paused (this tab shows). */
  askToResume() {
    this.#channel?.postMessage({ kind: 'resume' });
  }

  /** Leaves: the channel closes, and the next tab in line may lead. */
  close() {
    this.#channel?.close();
    this.#releaseLock?.();
  }

  // ---- followers (tabs that share the leader's connection) -----------------

  /** @param {any} message */
  #onChannel(message) {
    const view = this.#view;
    if (view.closed) return;
    if (this.leader) {
      // A tab just joined: tell it the status it missed.
      if (message.kind === 'hello') this.relay({ kind: 'status', status: view.target.status });
      // A visible tab needs the connection this hidden leader paused.
      if (message.kind === 'resume' && view.mode === 'paused') view.page.resume();
      return;
    }
    if (message.kind === 'status') {
      view.target.status = message.status;
      const { kind, ...detail } = message;
      view.emit('status', detail);
      if (message.status === 'paused' && view.env.document?.visibilityState === 'visible') {
        /** @type {Channel} */ (this.#channel).postMessage({ kind: 'resume' });
      }
    } else if (message.kind === 'event') {
      view.deliver(message.id, message.data);
    } else if (message.kind === 'signal') {
      view.emit('signal', { data: message.data });
    } else if (message.kind === 'position') {
      view.advance(message.id);
    } else if (message.kind === 'snapshot') {
      view.applySnapshot(message.snapshot);
    } else if (message.kind === 'reset') {
      view.onReset(message.id, message.data);
    }
  }
}
