// What every module of the client shares: the default timings, the
// environment (the platform's timers, fetch and page, replaceable in tests),
// event ids, message ids, retry delays, and the caller read from a token.

/** @typedef {import('../types/chat-client.js').Timings} Timings */
/** @typedef {import('../types/chat-client.js').Environment} Environment */

/** @type {Readonly<Timings>} */
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

/**
 * Full jitter: a delay uniformly in [0, min(max, initial * 2^attempt)].
 * @param {number} attempt
 * @param {Pick<Timings, 'backoffInitial' | 'backoffMax'>} [options]
 * @param {() => number} [random]
 * @returns {number}
 */
export function backoffDelay(attempt, options = DEFAULTS, random = Math.random) {
  const ceiling = Math.min(options.backoffMax, options.backoffInitial * 2 ** attempt);
  return Math.floor(random() * ceiling);
}

/**
 * A delay the server asked for (`Retry-After`), spread so that clients told
 * the same thing do not come back in lockstep: uniformly in [ms, 2 ms).
 * @param {number} ms
 * @param {() => number} [random]
 * @returns {number}
 */
export function jittered(ms, random = Math.random) {
  return Math.floor(ms * (1 + random()));
}

/**
 * How long to wait before trying again after `error`, the `attempt`-th
 * failure (from 0): what the server asked for, jittered, else the backoff.
 * @param {any} error
 * @param {number} attempt
 * @param {Pick<Timings, 'backoffInitial' | 'backoffMax'>} [options]
 * @param {() => number} [random]
 * @returns {number}
 */
export function retryDelay(error, attempt, options = DEFAULTS, random = Math.random) {
  if (error?.retryAfter) return jittered(error.retryAfter * 1000, random);
  return backoffDelay(attempt, options, random);
}

/**
 * Event ids are decimal strings that may exceed 2^53: compare them as text.
 * @param {string | null | undefined} id
 * @param {string | null | undefined} than
 * @returns {boolean}
 */
export function isNewerId(id, than) {
  if (id == null || id === '') return false;
  if (than == null || than === '') return true;
  if (id.length !== than.length) return id.length > than.length;
  return id > than;
}

/**
 * A fresh idempotency key for a message (a `clientId`).
 * @param {() => number} [random]
 * @returns {string}
 */
export function newClientId(random = Math.random) {
  const uuid = globalThis.crypto?.randomUUID?.();
  if (uuid) return uuid;
  return `c-${Date.now().toString(36)}-${Math.floor(random() * 2 ** 52).toString(36)}`;
}

/**
 * The claims of a JWT, read without verifying it (the server does that).
 * @param {string} token
 * @returns {{ sub: string, role: 'admin' | 'user' }}
 */
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
 * The platform's own facilities; each may be replaced (`environment`).
 * @returns {Environment}
 */
export function defaultEnvironment() {
  // Typed loosely: a page's globals (document, window, navigator) are absent in Node.
  const g = /** @type {any} */ (globalThis);
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
