// Unit tests of ChatStream on a fake clock with a scripted server: backoff and
// jitter, the watchdogs, falling back to long-polling and back, visibility,
// sharing between tabs, de-duplication and clean-up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatStream, DEFAULTS, SseParser, backoffDelay, isNewerId, jittered } from '../chat-client.js';
import {
  fakeClock, fakeLocks, fakeServer, hanging, page, refused, rooms, sseBody, streamResponse, tokenFor,
} from './fakes.mjs';

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

function client(env, server, options = {}) {
  const stream = new ChatStream({
    getToken: async () => tokenFor('u1'),
    shareAcrossTabs: false,
    heartbeatTimeout: 1_000,
    connectTimeout: 500,
    backoffInitial: 100,
    backoffMax: 800,
    maxAttempts: 5,
    pollInterval: 200,
    pollWait: 2,
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

const message = (seq, roomId = 'r') => ({
  type: 'message',
  message: { id: `m${seq}`, roomId, seq, authorId: 'x', body: `m${seq}`, clientId: null, createdAt: '' },
});

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
  assert.equal(DEFAULTS.backoffMax, 5_000, 'anything failed is tried again within 5 s');
  assert.equal(DEFAULTS.streamRetryInterval, 5_000);
  assert.equal(DEFAULTS.heartbeatTimeout, 60_000);
});

test('a delay the server gives is spread over [delay, 2 delay)', () => {
  assert.equal(jittered(1_000, () => 0), 1_000);
  assert.equal(jittered(1_000, () => 0.999_999), 1_999);
  const seen = new Set(Array.from({ length: 50 }, () => jittered(1_000)));
  assert.ok(seen.size > 10, 'clients told the same thing do not come back together');
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
  assert.ok(!isNewerId(null, '1'));
});

test('it starts from the snapshot, goes live, and drops repeated ids', async () => {
  const env = fakeClock();
  const sse = sseBody();
  const server = fakeServer((path) => (path.startsWith('/api/chat/sse') ? streamResponse(sse) : rooms('41')));
  const { stream, statuses, events } = client(env, server);
  await stream.start();
  await env.advance(0);
  assert.equal(server.snapshots()[0].path, '/api/chat/rooms?limit=500', 'every room, by pages of 500');
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

test('a snapshot of many rooms is every page, resumed from the first page\'s id', async () => {
  const env = fakeClock();
  const server = fakeServer((path) => {
    if (path.startsWith('/api/chat/sse')) return streamResponse(sseBody());
    if (path.includes('pageToken=p2')) {
      return { json: { rooms: [{ id: 'b' }, { id: 'c' }], totalUnread: 9, nextPageToken: null, lastEventId: '60' } };
    }
    return { json: { rooms: [{ id: 'a' }, { id: 'b' }], totalUnread: 5, nextPageToken: 'p2', lastEventId: '50' } };
  });
  const { stream } = client(env, server);
  const snapshots = [];
  stream.addEventListener('snapshot', (e) => snapshots.push(e.detail));
  await stream.start();
  await env.advance(0);
  assert.deepEqual(snapshots[0].rooms.map((r) => r.id), ['a', 'b', 'c'], 'each room once');
  assert.equal(snapshots[0].lastEventId, '50');
  assert.equal(server.streams()[0].headers['Last-Event-ID'], '50');
  stream.close();
});

test('the watchdog reconnects a silent stream, resuming from the last id', async () => {
  const env = fakeClock();
  const { server, bodies } = streamingServer('1');
  const { stream, statuses } = client(env, server);
  await stream.start();
  await env.advance(0);
  bodies[0].write('retry: 3000\n\n');
  bodies[0].write('id: 5\ndata: {"type":"room","room":{"id":"r"},"change":"created"}\n\n');
  await env.advance(999);
  assert.equal(server.streams().length, 1, 'not yet');
  await env.advance(1);
  assert.equal(server.streams()[0].signal.aborted, true, 'the silent connection is closed');
  await env.advance(50); // backoff: 0.5 × 100 ms
  assert.equal(server.streams().length, 2);
  assert.equal(server.streams()[1].headers['Last-Event-ID'], '5');
  // Reconnecting in 50 ms, then reconnecting now (the wait is over).
  assert.deepEqual(statuses, ['live', 'reconnecting', 'reconnecting']);
  stream.close();
});

test('a stream ended because the store is down waits the server\'s retryIn, then resumes', async () => {
  const env = fakeClock();
  const { server, bodies } = streamingServer('1');
  const { stream } = client(env, server);
  await stream.start();
  await env.advance(0);
  bodies[0].write('retry: 3000\n\nid: 5\ndata: {"type":"room","room":{"id":"r"},"change":"created"}\n\n');
  await env.advance(0);
  bodies[0].write('retry: 7000\ndata: {"type":"unavailable","retryIn":7000}\n\n');
  bodies[0].end();
  await env.advance(6_999);
  assert.equal(server.streams().length, 1, 'not before the 7 s the server asked for');
  await env.advance(1);
  assert.equal(server.streams().length, 2);
  assert.equal(server.streams()[1].headers['Last-Event-ID'], '5');
  stream.close();
});

test('a stream the server ends never brings a reconnect at once, and ends soon after opening back off', async () => {
  const env = fakeClock();
  const { server, bodies } = streamingServer('1');
  const { stream } = client(env, server, { reconnectFloor: 500, steadyStream: 10_000 });
  await stream.start();
  /** Proves the newest stream (bytes at two moments), keeps it `ms` alive, and ends it; when. */
  const serveAndEnd = async (ms) => {
    await env.advance(0);
    const body = bodies.at(-1);
    body.write('retry: 3000\n\n');
    for (let alive = 0; alive < ms; alive += 500) {
      await env.advance(500);
      body.write('data: {"type":"heartbeat","timestamp":1}\n\n');
    }
    await env.advance(0);
    body.end();
    return env.now();
  };
  /** How long until the next stream opens. */
  const nextOpen = async (since) => {
    const count = bodies.length;
    while (bodies.length === count) await env.advance(50);
    return env.now() - since;
  };
  const gaps = [];
  for (let round = 0; round < 3; round += 1) gaps.push(await nextOpen(await serveAndEnd(500)));
  assert.ok(gaps.every((gap) => gap >= 500), `never under the floor: ${gaps}`);
  assert.ok(gaps[0] < gaps[1] && gaps[1] < gaps[2], `ending soon after opening backs off: ${gaps}`);
  // A stream that lived long and ended is not a failure: back to the floor.
  const gap = await nextOpen(await serveAndEnd(10_500));
  assert.ok(gap >= 500 && gap <= 600, `reconnected after ${gap} ms`);
  stream.close();
});

test('a connect that never answers, or answers without a byte, falls back to polling after connectTimeout', async () => {
  const env = fakeClock();
  let streams = 0;
  const server = fakeServer((path, init) => {
    if (path.startsWith('/api/chat/events')) return hanging(init);
    if (!path.startsWith('/api/chat/sse')) return rooms('1');
    streams += 1;
    return streams === 1 ? hanging(init) : streamResponse(sseBody());
  });
  const { stream } = client(env, server, { maxAttempts: 3 });
  await stream.start();
  await env.advance(499);
  assert.equal(server.streams()[0].signal.aborted, false);
  // No answer at all (a proxy that holds even the headers): polling starts
  // at once, not after maxAttempts more tries.
  await env.advance(1);
  assert.equal(server.streams()[0].signal.aborted, true, 'the hanging fetch is aborted');
  assert.equal(stream.status, 'polling');
  assert.equal(server.polls().length, 1);
  // The probe answers with headers but holds every byte back (a buffering
  // proxy): it is given up after connectTimeout, and polling goes on.
  await env.advance(3_000);
  assert.equal(server.streams().length, 2, 'a probe');
  await env.advance(500);
  assert.equal(server.streams()[1].signal.aborted, true, 'the silent probe is given up');
  assert.equal(stream.status, 'polling');
  stream.close();
});

test('a snapshot that fails or hangs is tried again with backoff until it comes; start() waits for it', async () => {
  const env = fakeClock();
  let snapshots = 0;
  const server = fakeServer((path, init) => {
    if (path.startsWith('/api/chat/sse')) return streamResponse(sseBody());
    snapshots += 1;
    if (snapshots === 1) return refused(503, { 'retry-after': '1' });
    if (snapshots === 2) return hanging(init);
    if (snapshots === 3) throw new TypeError('network down');
    return rooms('7');
  });
  const { stream } = client(env, server);
  const retries = [];
  stream.addEventListener('status', (e) => e.detail.retryIn !== undefined && retries.push(e.detail));
  let started = false;
  stream.start().then(() => (started = true));
  await env.advance(0);
  assert.deepEqual(retries, [{ status: 'connecting', retryIn: 1_500 }], 'Retry-After 1 s, jittered');
  await env.advance(1_500);
  assert.equal(snapshots, 2);
  await env.advance(500); // the hanging one times out
  assert.equal(retries.length, 2);
  await env.advance(retries[1].retryIn);
  assert.equal(snapshots, 3);
  await env.advance(retries[2]?.retryIn ?? 0);
  assert.equal(snapshots, 4);
  assert.ok(started, 'start() resolved with the snapshot');
  assert.equal(server.streams()[0].headers['Last-Event-ID'], '7');
  stream.close();
});

test('a refused stream waits what Retry-After says, jittered, not in lockstep', async () => {
  const env = fakeClock({ random: () => 0.25 });
  let streams = 0;
  const server = fakeServer((path) => {
    if (!path.startsWith('/api/chat/sse')) return rooms('1');
    streams += 1;
    return streams === 1 ? refused(429, { 'retry-after': '4' }) : streamResponse(sseBody());
  });
  const { stream } = client(env, server);
  await stream.start();
  await env.advance(4_999);
  assert.equal(streams, 1, 'not before 4 s × 1.25');
  await env.advance(1);
  assert.equal(streams, 2);
  stream.close();
});

test('a refused poll waits what Retry-After says, jittered, not in lockstep', async () => {
  const env = fakeClock({ random: () => 0.25 });
  let polls = 0;
  const server = fakeServer((path, init) => {
    if (path.startsWith('/api/chat/sse')) return hanging(init);
    if (!path.startsWith('/api/chat/events')) return rooms('1');
    polls += 1;
    return polls === 1 ? refused(503, { 'retry-after': '2' }) : hanging(init);
  });
  const { stream } = client(env, server);
  await stream.start();
  await env.advance(500); // the stream's connect times out: polling
  assert.equal(stream.status, 'polling');
  assert.equal(polls, 1);
  await env.advance(2_499);
  assert.equal(polls, 1, 'not before 2 s × 1.25');
  await env.advance(1);
  assert.equal(polls, 2);
  stream.close();
});

/**
 * A server whose streams are refused until `streamsWork()`, and whose event
 * log is `log` (`[{ id, data }]`): polls and streams answer from it.
 */
function logServer(log, { snapshotId = '0' } = {}) {
  let working = false;
  const bodies = [];
  const after = (id) => log.filter((event) => BigInt(event.id) > BigInt(id ?? '0'));
  const server = fakeServer((path, init) => {
    const url = new URL(path, 'http://x');
    if (url.pathname === '/api/chat/events') {
      const events = after(url.searchParams.get('after'));
      if (events.length === 0) return hanging(init); // a long-poll that waits
      const answered = events.slice(0, 2);
      return page(answered, answered.at(-1).id, events.length > 2);
    }
    if (url.pathname === '/api/chat/sse') {
      if (!working) return refused(503);
      const sse = sseBody();
      bodies.push(sse);
      sse.write('retry: 3000\n\n');
      sse.write('data: {"type":"heartbeat","timestamp":1}\n\n');
      for (const event of after(init.headers['Last-Event-ID'])) {
        sse.write(`id: ${event.id}\ndata: ${JSON.stringify(event.data)}\n\n`);
      }
      return streamResponse(sse);
    }
    return rooms(snapshotId);
  });
  return { server, bodies, streamsWork: () => (working = true) };
}

test('while polling, every kind of event arrives once and in order, and the stream resumes after the last', async () => {
  const env = fakeClock();
  const log = [
    { id: '11', data: message(1) },
    { id: '12', data: { type: 'read', roomId: 'r', userId: 'u1', lastReadSeq: 1 } },
    { id: '13', data: { type: 'room', room: { id: 'r' }, change: 'member_removed', userId: 'u2' } },
  ];
  const { server, bodies, streamsWork } = logServer(log, { snapshotId: '10' });
  const { stream, events } = client(env, server, { heartbeatTimeout: 60_000 });
  await stream.start();
  await env.advance(50 + 100 + 200 + 400); // five refusals
  assert.equal(stream.status, 'polling');
  assert.equal(server.polls()[0].path, '/api/chat/events?wait=2&limit=500&after=10');
  await env.advance(0);
  assert.deepEqual(events.map((e) => e.id), ['11', '12', '13'], 'messages, reads and room events');
  assert.equal(server.polls()[1].path, '/api/chat/events?wait=2&limit=500&after=12', 'pages follow on');
  log.push({ id: '14', data: message(2) });
  streamsWork();
  await env.advance(3_000); // the probe, within streamRetryInterval
  assert.equal(stream.status, 'live');
  assert.equal(server.polls().at(-1).signal.aborted, true, 'polling stopped');
  assert.equal(server.streams().at(-1).headers['Last-Event-ID'], '13', 'resumes after the last delivered');
  assert.deepEqual(events.map((e) => e.id), ['11', '12', '13', '14'], 'nothing lost, nothing twice');
  bodies.at(-1).write('id: 13\ndata: {"type":"read","roomId":"r","userId":"u1","lastReadSeq":1}\n\n');
  await env.advance(0);
  assert.equal(events.length, 4);
  const pollsWhenLive = server.polls().length;
  await env.advance(10_000);
  assert.equal(server.polls().length, pollsWhenLive, 'no polls once live');
  stream.close();
});

test('a poll answer moves the resume point past events the caller cannot see', async () => {
  const env = fakeClock();
  let polls = 0;
  const server = fakeServer((path, init) => {
    if (path.startsWith('/api/chat/sse')) return refused(503);
    if (path.startsWith('/api/chat/events')) {
      polls += 1;
      return polls === 1 ? page([], '90') : hanging(init);
    }
    return rooms('10');
  });
  const { stream } = client(env, server, { maxAttempts: 1 });
  await stream.start();
  await env.advance(0);
  assert.equal(stream.status, 'polling');
  assert.equal(stream.lastEventId, '90');
  await env.advance(200); // an empty answer that came at once: the next waits pollInterval
  assert.equal(server.polls()[1].path, '/api/chat/events?wait=2&limit=500&after=90');
  stream.close();
});

test('a probe that became the stream and then fails is reconnected within a second, not after a watchdog', async () => {
  const env = fakeClock();
  const { server, bodies, streamsWork } = logServer([], { snapshotId: '1' });
  const { stream, statuses } = client(env, server, { heartbeatTimeout: 60_000, maxAttempts: 1 });
  await stream.start();
  await env.advance(0);
  assert.equal(stream.status, 'polling');
  streamsWork();
  await env.advance(3_000);
  assert.equal(stream.status, 'live');
  const opened = server.streams().length;
  bodies.at(-1).end(); // the server ends it (a restart)
  await env.advance(1_000);
  assert.equal(server.streams().length, opened + 1, 'reconnected after the floor and a first backoff');
  assert.deepEqual(statuses.slice(-2), ['reconnecting', 'live']);
  stream.close();
});

test('pausing aborts a probe in flight and leaves nothing running', async () => {
  const env = fakeClock();
  const document = Object.assign(new EventTarget(), { visibilityState: 'visible' });
  const server = fakeServer((path, init) => {
    if (path.startsWith('/api/chat/sse')) return server.streams().length === 1 ? refused(503) : hanging(init);
    if (path.startsWith('/api/chat/events')) return hanging(init);
    return rooms('1');
  });
  const { stream } = client(env, server, {
    maxAttempts: 1, connectTimeout: 60_000, environment: { document },
  });
  await stream.start();
  await env.advance(3_000); // polling, and a probe hangs
  assert.equal(stream.status, 'polling');
  const probe = server.streams().at(-1);
  assert.equal(probe.signal.aborted, false);
  document.visibilityState = 'hidden';
  document.dispatchEvent(new Event('visibilitychange'));
  await env.advance(10_000);
  assert.equal(stream.status, 'paused');
  assert.equal(probe.signal.aborted, true, 'the probe is aborted');
  assert.equal(server.polls().at(-1).signal.aborted, true, 'the poll too');
  assert.deepEqual(stream.pendingTimers(), [], 'nothing runs while paused');
  const calls = server.calls.length;
  await env.advance(60_000);
  assert.equal(server.calls.length, calls, 'and nothing comes back to life');
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

test('a room that is gone ends the view with an error event, no retries', async () => {
  const env = fakeClock();
  const server = fakeServer((path) => (path.startsWith('/api/chat/sse') ? refused(404) : rooms('1')));
  const { stream } = client(env, server);
  const errors = [];
  stream.addEventListener('error', (e) => errors.push(e.detail.error.status));
  await stream.start();
  await env.advance(10_000);
  assert.deepEqual(errors, [404]);
  assert.equal(server.streams().length, 1);
  assert.equal(env.pending(), 0);
});

test('close leaves no timer, listener or connection behind', async () => {
  const env = fakeClock();
  const listeners = new Map();
  const target = () => ({
    addEventListener: (type) => listeners.set(type, (listeners.get(type) ?? 0) + 1),
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

test('after a leader change the new leader goes on from the last id it heard: nothing twice', async () => {
  const env = fakeClock();
  const locks = fakeLocks();
  const log = [{ id: '2', data: message(1) }, { id: '3', data: message(2) }];
  const { server, streamsWork } = logServer(log, { snapshotId: '1' });
  const shared = { shareAcrossTabs: true, heartbeatTimeout: 60_000, maxAttempts: 1 };
  const leader = client(env, server, { ...shared, environment: { locks, BroadcastChannel } });
  const follower = client(env, server, { ...shared, environment: { locks, BroadcastChannel } });
  await leader.stream.start();
  await follower.stream.start();
  await env.advance(0);
  assert.equal(leader.stream.status, 'polling');
  assert.deepEqual(follower.events.map((e) => e.id), ['2', '3'], 'polled events reach the follower, with ids');
  leader.stream.close();
  streamsWork();
  log.push({ id: '4', data: message(3) });
  await env.advance(0);
  assert.ok(follower.stream.isLeader);
  assert.equal(server.streams().at(-1).headers['Last-Event-ID'], '3');
  assert.deepEqual(follower.events.map((e) => e.id), ['2', '3', '4'], 'each once');
  follower.stream.close();
});

test('a stream that shows its first bytes and then holds the rest falls back to polling', async () => {
  const env = fakeClock();
  const server = fakeServer((path, init) => {
    if (path.startsWith('/api/chat/sse')) {
      const sse = sseBody();
      sse.write('retry: 3000\n\n'); // and then nothing: a proxy holds it
      return streamResponse(sse);
    }
    if (path.startsWith('/api/chat/events')) return hanging(init);
    return rooms('1');
  });
  const { stream, statuses } = client(env, server, { maxAttempts: 3 });
  await stream.start();
  await env.advance(1_000); // the watchdog, once
  assert.equal(stream.status, 'polling', `${statuses}`);
  assert.equal(server.streams().length, 1, 'at once, not after more attempts');
  // Probes that show bytes but never more take over nothing: polling goes on.
  await env.advance(10_000);
  assert.equal(server.polls().filter((p) => !p.signal.aborted).length, 1, 'one poll waiting, all along');
  stream.close();
});

test('a reload that had to retry puts the status back as the connection is', async () => {
  const env = fakeClock();
  const sse = sseBody();
  let snapshots = 0;
  const server = fakeServer((path) => {
    if (path.startsWith('/api/chat/sse')) return streamResponse(sse);
    snapshots += 1;
    return snapshots === 2 ? refused(503) : rooms(String(snapshots * 100));
  });
  const { stream, statuses } = client(env, server, { heartbeatTimeout: 60_000 });
  await stream.start();
  await env.advance(0);
  sse.write('retry: 1\n\n');
  sse.write('id: 150\ndata: {"type":"reset","reason":"event_id_expired"}\n\n');
  await env.advance(1_000);
  assert.equal(snapshots, 3);
  assert.deepEqual(statuses, ['live', 'reconnecting', 'live']);
  stream.close();
});

test('a token that cannot be had yet is asked for again, the status saying so, and start() waits for it', async () => {
  const env = fakeClock();
  const { server } = streamingServer('1');
  let asked = 0;
  const stream = new ChatStream({
    shareAcrossTabs: false,
    backoffInitial: 100,
    getToken: async () => {
      asked += 1;
      if (asked < 3) throw new Error('the sign-in service is down');
      return tokenFor('u1', 'admin');
    },
    environment: { ...env, fetch: server.fetch },
  });
  const statuses = [];
  stream.addEventListener('status', (e) => statuses.push(e.detail));
  let started = false;
  stream.start().then(() => (started = true));
  await env.advance(1_000);
  assert.ok(started);
  assert.ok(asked > 3, 'twice refused, then a token for every request');
  assert.deepEqual(stream.claims, { sub: 'u1', role: 'admin' });
  assert.deepEqual(statuses.slice(0, 2).map((s) => s.status), ['connecting', 'connecting']);
  assert.ok(statuses[0].retryIn >= 0 && statuses[1].retryIn >= 0, 'each wait announced');
  stream.close();
});
