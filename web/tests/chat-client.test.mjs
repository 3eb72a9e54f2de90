// Unit tests of the client's timing logic on a fake clock, with a scripted
// server: backoff and jitter bounds, the watchdog, the fallback to polling and
// back, visibility, de-duplication and clean-up. Run: node --test web/tests/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatStream, DEFAULTS, SseParser, backoffDelay, isNewerId } from '../sdk/chat-client.js';

/** Timers that only move when the test says so. */
function fakeClock() {
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
    random: () => 0.5,
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

const settle = async () => {
  for (let i = 0; i < 20; i += 1) await new Promise((resolve) => setImmediate(resolve));
};

/** An SSE body the test writes to. */
function sseBody() {
  let controller;
  const body = new ReadableStream({ start: (c) => (controller = c) });
  const encoder = new TextEncoder();
  return {
    body,
    write: (text) => controller.enqueue(encoder.encode(text)),
    end: () => controller.close(),
  };
}

/** A scripted server: `routes(path, init)` answers each fetch; every call is recorded. */
function fakeServer(routes) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    const path = url.replace(/^https?:\/\/[^/]+/, '');
    calls.push({ path, headers: init.headers ?? {}, signal: init.signal });
    const answer = await routes(path, init);
    if (answer instanceof Response) return answer;
    return new Response(JSON.stringify(answer.json ?? {}), {
      status: answer.status ?? 200,
      headers: { 'content-type': 'application/json', ...(answer.headers ?? {}) },
    });
  };
  return { fetch, calls, streams: () => calls.filter((c) => c.path.startsWith('/api/chat/sse')) };
}

/** A server whose snapshot says `lastEventId` and whose every stream is a fresh body, kept in `bodies`. */
function streamingServer(lastEventId) {
  const bodies = [];
  const server = fakeServer((path) => {
    if (!path.startsWith('/api/chat/sse')) return rooms(lastEventId);
    const sse = sseBody();
    bodies.push(sse);
    return streamResponse(sse);
  });
  return { server, bodies };
}

const rooms = (lastEventId) => ({ json: { rooms: [], totalUnread: 0, nextPageToken: null, lastEventId } });
const streamResponse = (sse) =>
  new Response(sse.body, { status: 200, headers: { 'content-type': 'text/event-stream' } });

function client(env, server, options = {}) {
  const stream = new ChatStream({
    getToken: async () => 'header.eyJzdWIiOiJ1MSJ9.sig',
    shareAcrossTabs: false,
    heartbeatTimeout: 1_000,
    backoffInitial: 100,
    backoffMax: 800,
    maxAttempts: 5,
    pollInterval: 500,
    streamRetryInterval: 3_000,
    pauseWhenHiddenAfter: 10_000,
    ...options,
    environment: { ...env, fetch: server.fetch, ...(options.environment ?? {}) },
  });
  const statuses = [];
  const events = [];
  stream.addEventListener('status', (e) => statuses.push(e.detail.status));
  stream.addEventListener('event', (e) => events.push(e.detail));
  return { stream, statuses, events };
}

test('backoff is full jitter under a doubling ceiling capped at the maximum', () => {
  const options = { backoffInitial: 1_000, backoffMax: 16_000 };
  const ceilings = [1_000, 2_000, 4_000, 8_000, 16_000, 16_000, 16_000];
  ceilings.forEach((ceiling, attempt) => {
    assert.equal(backoffDelay(attempt, options, () => 0), 0);
    assert.equal(backoffDelay(attempt, options, () => 0.999_999), ceiling - 1);
    for (let i = 0; i < 100; i += 1) {
      const delay = backoffDelay(attempt, options);
      assert.ok(delay >= 0 && delay < ceiling, `${delay} within [0, ${ceiling})`);
    }
  });
  assert.equal(DEFAULTS.backoffInitial, 1_000);
  assert.equal(DEFAULTS.backoffMax, 16_000);
  assert.equal(DEFAULTS.heartbeatTimeout, 60_000);
});

test('the parser reads every line ending, split chunks, comments and ids', () => {
  const seen = [];
  const parser = new SseParser((event) => seen.push(event));
  parser.push('retry: 3000\r\n\r\nid: 7\ndata: {"a"');
  parser.push(':1}\n\n: a comment\rdata: {"type":"heartbeat"}\r');
  parser.push('\n\r\ndata: line one\ndata: line two\n\n');
  assert.deepEqual(seen, [
    { id: '7', hasId: true, data: '{"a":1}' },
    { id: '7', hasId: false, data: '{"type":"heartbeat"}' },
    { id: '7', hasId: false, data: 'line one\nline two' },
  ]);
});

test('event ids compare as numbers beyond 2^53', () => {
  assert.ok(isNewerId('10', '9'));
  assert.ok(!isNewerId('9', '10'));
  assert.ok(!isNewerId('5', '5'));
  assert.ok(isNewerId('9007199254740993', '9007199254740992'));
  assert.ok(isNewerId('1', null));
});

test('it starts from the snapshot, goes live, and drops repeated ids', async () => {
  const env = fakeClock();
  const sse = sseBody();
  const server = fakeServer((path) => (path.startsWith('/api/chat/sse') ? streamResponse(sse) : rooms('41')));
  const { stream, statuses, events } = client(env, server);
  await stream.start();
  await env.advance(0);
  assert.equal(server.streams()[0].headers['Last-Event-ID'], '41', 'resumes from the snapshot');
  sse.write('retry: 3000\n\n');
  await env.advance(0);
  assert.deepEqual(statuses, ['live']);
  sse.write('id: 42\ndata: {"type":"read","roomId":"r","userId":"u","lastReadSeq":1}\n\n');
  sse.write('id: 42\ndata: {"type":"read","roomId":"r","userId":"u","lastReadSeq":1}\n\n');
  sse.write('id: 40\ndata: {"type":"read","roomId":"r","userId":"u","lastReadSeq":0}\n\n');
  sse.write('data: {"type":"heartbeat","timestamp":1}\n\n');
  await env.advance(0);
  assert.deepEqual(events.map((e) => e.id), ['42']);
  stream.close();
});

test('the watchdog reconnects a silent stream, resuming from the last id', async () => {
  const env = fakeClock();
  const { server, bodies } = streamingServer('1');
  const { stream, statuses } = client(env, server);
  await stream.start();
  await env.advance(0);
  bodies[0].write('retry: 3000\n\nid: 5\ndata: {"type":"room","room":{"id":"r"},"change":"created"}\n\n');
  await env.advance(999);
  assert.equal(server.streams().length, 1, 'not yet');
  await env.advance(1);
  assert.equal(server.streams()[0].signal.aborted, true, 'the silent connection is closed');
  await env.advance(50); // backoff: 0.5 × 100 ms
  assert.equal(server.streams().length, 2);
  assert.equal(server.streams()[1].headers['Last-Event-ID'], '5');
  assert.deepEqual(statuses, ['live', 'reconnecting']);
  stream.close();
});

test('after five failures it polls with If-None-Match, and stops when streaming is back', async () => {
  const env = fakeClock();
  let streamingWorks = false;
  const live = sseBody();
  const server = fakeServer((path, init) => {
    if (path.startsWith('/api/chat/sse')) {
      return streamingWorks ? streamResponse(live) : { status: 503, json: { error: {} } };
    }
    if (init.headers?.['If-None-Match'] === '"v1"') return new Response(null, { status: 304 });
    return { ...rooms('9'), headers: { etag: '"v1"' } };
  });
  // A long watchdog: this test sends no heartbeats once live.
  const { stream, statuses } = client(env, server, { heartbeatTimeout: 60_000 });
  await stream.start();
  // Five failures with backoff ceilings 100, 200, 400, 800, 800 (jitter 0.5).
  await env.advance(0);
  await env.advance(50 + 100 + 200 + 400);
  assert.equal(server.streams().length, 5);
  assert.equal(stream.status, 'polling');
  const polls = () => server.calls.filter((c) => c.path === '/api/chat/rooms').slice(1);
  await env.advance(500);
  assert.equal(polls().length, 1);
  assert.equal(polls()[0].headers['If-None-Match'], '"v1"', 'an unchanged poll costs a 304');
  await env.advance(1_000);
  assert.equal(polls().length, 3);
  streamingWorks = true;
  await env.advance(1_500); // the background stream attempt at 3 s
  live.write('retry: 3000\n\n');
  await env.advance(0);
  assert.equal(stream.status, 'live');
  const pollsWhenLive = polls().length;
  await env.advance(5_000);
  assert.equal(polls().length, pollsWhenLive, 'polling stopped');
  assert.deepEqual(stream.pendingTimers().sort(), ['watchdog']);
  assert.deepEqual(statuses, ['reconnecting', 'polling', 'live']);
  stream.close();
});

test('a long-hidden tab pauses, and becoming visible resumes from the last id', async () => {
  const env = fakeClock();
  const document = new EventTarget();
  document.visibilityState = 'visible';
  const { server, bodies } = streamingServer('3');
  const { stream } = client(env, server, { heartbeatTimeout: 60_000, environment: { document } });
  await stream.start();
  await env.advance(0);
  bodies[0].write('retry: 1\n\nid: 4\ndata: {"type":"read","roomId":"r","userId":"u","lastReadSeq":2}\n\n');
  await env.advance(0);
  document.visibilityState = 'hidden';
  document.dispatchEvent(new Event('visibilitychange'));
  await env.advance(9_999);
  assert.equal(stream.status, 'live');
  await env.advance(1);
  assert.equal(stream.status, 'paused');
  assert.equal(server.streams()[0].signal.aborted, true);
  assert.deepEqual(stream.pendingTimers(), [], 'nothing runs while paused');
  document.visibilityState = 'visible';
  document.dispatchEvent(new Event('visibilitychange'));
  await env.advance(0);
  assert.equal(server.streams().length, 2);
  assert.equal(server.streams()[1].headers['Last-Event-ID'], '4');
  stream.close();
});

test('a 401 refreshes the token once and retries', async () => {
  const env = fakeClock();
  const sse = sseBody();
  let refreshed = 0;
  const server = fakeServer((path, init) => {
    if (!path.startsWith('/api/chat/sse')) return rooms('1');
    return init.headers.Authorization === 'Bearer fresh' ? streamResponse(sse) : { status: 401, json: {} };
  });
  const stream = new ChatStream({
    shareAcrossTabs: false,
    getToken: async ({ forceRefresh }) => {
      if (forceRefresh) refreshed += 1;
      return forceRefresh || refreshed > 0 ? 'fresh' : 'stale';
    },
    environment: { ...env, fetch: server.fetch },
  });
  await stream.start();
  await env.advance(0);
  sse.write('retry: 1\n\n');
  await env.advance(0);
  assert.equal(refreshed, 1);
  assert.equal(stream.status, 'live');
  stream.close();
});

test('close leaves no timer, listener or connection behind', async () => {
  const env = fakeClock();
  const listeners = new Map();
  const target = () => ({
    addEventListener: (type, fn) => listeners.set(type, (listeners.get(type) ?? 0) + 1),
    removeEventListener: (type) => listeners.set(type, listeners.get(type) - 1),
  });
  const sse = sseBody();
  const server = fakeServer((path) => (path.startsWith('/api/chat/sse') ? streamResponse(sse) : rooms('1')));
  const { stream } = client(env, server, {
    environment: { document: { ...target(), visibilityState: 'visible' }, window: target() },
  });
  await stream.start();
  await env.advance(0);
  sse.write('retry: 1\n\n');
  await env.advance(0);
  assert.ok(env.pending() > 0);
  stream.close();
  assert.equal(env.pending(), 0, 'no timer');
  assert.ok([...listeners.values()].every((count) => count === 0), 'no listener');
  assert.equal(server.streams()[0].signal.aborted, true, 'no connection');
  await env.advance(120_000);
  assert.equal(server.streams().length, 1, 'and nothing comes back to life');
});

test('a reset refetches the snapshot and tells the app', async () => {
  const env = fakeClock();
  const sse = sseBody();
  let snapshots = 0;
  const server = fakeServer((path) => {
    if (path.startsWith('/api/chat/sse')) return streamResponse(sse);
    snapshots += 1;
    return rooms(String(snapshots * 100));
  });
  const { stream } = client(env, server);
  const resets = [];
  const loaded = [];
  stream.addEventListener('reset', (e) => resets.push(e.detail.reason));
  stream.addEventListener('snapshot', (e) => loaded.push(e.detail.lastEventId));
  await stream.start();
  await env.advance(0);
  sse.write('retry: 1\n\nid: 150\ndata: {"type":"reset","reason":"event_id_expired"}\n\n');
  await env.advance(0);
  assert.deepEqual(resets, ['event_id_expired']);
  assert.deepEqual(loaded, ['100', '200'], 'a fresh snapshot after the reset');
  assert.equal(stream.lastEventId, '200');
  stream.close();
});

test('going offline stops the stream; coming online reconnects at once', async () => {
  const env = fakeClock();
  const window = new EventTarget();
  const { server, bodies } = streamingServer('7');
  const { stream, statuses } = client(env, server, { environment: { window } });
  await stream.start();
  await env.advance(0);
  bodies[0].write('retry: 1\n\n');
  await env.advance(0);
  window.dispatchEvent(new Event('offline'));
  await env.advance(0);
  assert.equal(stream.status, 'offline');
  assert.deepEqual(stream.pendingTimers(), []);
  await env.advance(60_000);
  assert.equal(server.streams().length, 1, 'no attempts while offline');
  window.dispatchEvent(new Event('online'));
  await env.advance(0);
  assert.equal(server.streams().length, 2, 'no backoff wait');
  assert.equal(server.streams()[1].headers['Last-Event-ID'], '7');
  assert.deepEqual(statuses, ['live', 'offline', 'reconnecting']);
  stream.close();
});

/** Web Locks, as much as the client uses: one holder per name, the rest queue. */
function fakeLocks() {
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

test('tabs share one stream, and a visible tab wakes a leader that paused while hidden', async () => {
  const env = fakeClock();
  const locks = fakeLocks();
  const hiddenDocument = Object.assign(new EventTarget(), { visibilityState: 'visible' });
  const visibleDocument = Object.assign(new EventTarget(), { visibilityState: 'visible' });
  const { server, bodies } = streamingServer('1');
  const shared = { shareAcrossTabs: true, heartbeatTimeout: 60_000 };
  const leader = client(env, server, { ...shared, environment: { locks, BroadcastChannel, document: hiddenDocument } });
  const follower = client(env, server, { ...shared, environment: { locks, BroadcastChannel, document: visibleDocument } });
  await leader.stream.start();
  await follower.stream.start();
  await env.advance(0);
  bodies[0].write('retry: 1\n\nid: 2\ndata: {"type":"read","roomId":"r","userId":"u","lastReadSeq":1}\n\n');
  await env.advance(0);
  assert.equal(server.streams().length, 1, 'one stream for two tabs');
  assert.ok(leader.stream.isLeader && !follower.stream.isLeader);
  assert.deepEqual(follower.events.map((e) => e.id), ['2'], 'the follower hears it too');
  assert.equal(follower.stream.status, 'live');

  hiddenDocument.visibilityState = 'hidden';
  hiddenDocument.dispatchEvent(new Event('visibilitychange'));
  await env.advance(10_000);
  assert.equal(server.streams().length, 2, 'the visible tab woke the leader');
  assert.equal(server.streams()[1].headers['Last-Event-ID'], '2');
  bodies[1].write('retry: 1\n\n');
  await env.advance(0);
  assert.equal(follower.stream.status, 'live');
  leader.stream.close();
  follower.stream.close();
});
