// The page's lifecycle: a tab hidden for long (`pauseWhenHiddenAfter`)
// closes its connection and opens it again once it shows; a browser that
// goes offline stops trying until it is online again.

/** @typedef {import('./stream.js').View} View */

/** A view's listeners on the page (its document and window), and what they do. */
export class PageLifecycle {
  /** @type {View} */
  #view;
  /** @type {Array<() => void>} */
  #cleanups = [];

  /** @param {View} view */
  constructor(view) {
    this.#view = view;
  }

  /** Listens to the page's visibility and connectivity, where there is a page. */
  listen() {
    const view = this.#view;
    const { document, window } = view.env;
    /**
     * @param {import('../types/chat-client.js').Listenable | undefined} target
     * @param {string} type
     * @param {() => void} handler
     */
    const on = (target, type, handler) => {
      if (!target?.addEventListener) return;
      target.addEventListener(type, handler);
      this.#cleanups.push(() => target.removeEventListener(type, handler));
    };
    on(document, 'visibilitychange', () => {
      if (/** @type {NonNullable<typeof document>} */ (document).visibilityState === 'hidden') {
        view.later('hidden', view.options.pauseWhenHiddenAfter, () => this.#pause('paused'));
      } else {
        view.cancel('hidden');
        if (view.target.status !== 'paused') return;
        if (view.tabs.leader) this.resume();
        else view.tabs.askToResume();
      }
    });
    on(window, 'offline', () => this.#pause('offline'));
    on(window, 'online', () => {
      if (view.mode === 'offline') this.resume();
    });
  }

  /** Stops listening (the view closes). */
  close() {
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
  }

  /** @param {'paused' | 'offline'} status */
  #pause(status) {
    const view = this.#view;
    if (!view.tabs.leader || view.closed) return;
    view.fallback.stop();
    view.transport.drop();
    view.mode = status;
    view.setStatus(status);
  }

  /** Connects again (the page shows, or is online again). */
  resume() {
    const view = this.#view;
    if (!view.tabs.leader || view.closed) return;
    view.transport.restart();
  }
}
