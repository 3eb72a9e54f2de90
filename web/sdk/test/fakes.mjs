// Test doubles for the unit tests: a clock that moves only when told, a
// scripted server, SSE bodies the test writes to, and Web Locks.

/** Timers that only move when the test says so. */
export function fakeClock({ random = () => 0.5 } = {}) {
  let now = 0;
  let nextId = 1;
  const timers = new Map();
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = nextId++;
      timers.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout(id) {
      timers.delete(id);
    },
    random,
    pending: () => timers.size,
    /** Moves time forward, firing due timers in order, letting promises settle. */
    async advance(ms) {
      const until = now + ms;
      for (;;) {
        await settle();
        const due = [...timers.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = until;
      await settle();
    },
  };
}

export const settle = async () => {
  for (let i = 0; i < 20; i += 1) await new Promise((resolve) => setImmediate(resolve));
};

/** An SSE body the test writes to. */
export function sseBody() {
  let controller;
  const body = new ReadableStream({ start: (c) => (controller = c) });
  const encoder = new TextEncoder();
  return {
    body,
    write: (text) => controller.enqueue(encoder.encode(text)),
    end: () => controller.close(),
  };
}

/** A fetch answer that never comes (until the request is aborted). */
export function hanging(init) {
  return new Promise((_, reject) => {
    init.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
  });
}

/**
 * A scripted server: `routes(path, init, call)` answers each fetch with a
 * Response, a promise of one, or `{ status, json, headers }`. Every call is
 * recorded with its path, headers, body and signal.
 */
export function fakeServer(routes) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    const path = url.replace(/^https?:\/\/[^/]+/, '');
    const call = { path, headers: init.headers ?? {}, body: init.body, signal: init.signal };
    calls.push(call);
    const answer = await routes(path, init, call);
    if (answer instanceof Response) return answer;
    return new Response(JSON.stringify(answer.json ?? {}), {
      status: answer.status ?? 200,
      headers: { 'content-type': 'application/json', ...(answer.headers ?? {}) },
    });
  };
  const where = (prefix) => calls.filter((c) => c.path.startsWith(prefix));
  return {
    fetch,
    calls,
    streams: () => where('/api/chat/sse'),
    polls: () => where('/api/chat/events'),
    snapshots: () => where('/api/chat/rooms'),
  };
}

export const rooms = (lastEventId, list = []) => ({
  json: { rooms: list, totalUnread: 0, nextPageToken: null, lastEventId },
});
export const page = (events, lastEventId, hasMore = false) => ({ json: { events, lastEventId, hasMore } });
export const streamResponse = (sse) =>
  new Response(sse.body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
export const refused = (status = 503, headers = {}) => ({ status, json: { error: { code: 'x', message: 'no' } }, headers });

/** Web Locks, as much as the client uses: one holder per name, the rest queue. */
export function fakeLocks() {
  const queues = new Map();
  return {
    request(name, callback) {
      return new Promise((resolve) => {
        const queue = queues.get(name) ?? [];
        queues.set(name, queue);
        const run = async () => {
          resolve(await callback());
          queue.shift();
          queue[0]?.();
        };
        queue.push(run);
        if (queue.length === 1) run();
      });
    },
  };
}

/** A token whose payload names `sub` (and `role`): the client reads, never checks, it. */
export function tokenFor(sub, role = 'user') {
  const payload = Buffer.from(JSON.stringify({ sub, role })).toString('base64url');
  return `header.${payload}.sig`;
}
