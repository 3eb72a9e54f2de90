// Unit tests of typing and presence signals on a fake clock with a scripted
// server: signals neither move the resume point nor fall to dedupe by id,
// reach follower tabs, and feed the Presence and Typing keepers; the
// TypingSender's throttle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatApi, ChatRooms, ChatStream, Presence, Typing, TypingSender } from '../chat-client.js';
import {
  fakeClock, fakeLocks, fakeServer, rooms, sseBody, streamResponse, tokenFor,
} from './fakes.mjs';

const typing = (userId, on = true, roomId = 'r') => ({ type: 'typing', roomId, userId, typing: on, expiresInMs: 6_000 });
const presence = (userId, online, version) => ({ type: 'presence', userId, online, version });
const sseSignal = (data) => `data: ${JSON.stringify(data)}\n\n`;

/** A server with streams the test writes to, and presence snapshots it scripts. */
function signalServer({ lastEventId = '10', snapshots = [] } = {}) {
  const bodies = [];
  const server = fakeServer((path) => {
    if (path.startsWith('/api/chat/presence')) return snapshots.shift() ?? { json: { version: 0, users: [] } };
    if (!path.startsWith('/api/chat/sse')) return rooms(lastEventId);
    const sse = sseBody();
    bodies.push(sse);
    return streamResponse(sse);
  });
  return { server, bodies };
}

function stream(env, server, options = {}) {
  const view = new ChatStream({
    getToken: async () => tokenFor('me'),
    shareAcrossTabs: false,
    heartbeatTimeout: 1_000,
    connectTimeout: 500,
    backoffInitial: 100,
    backoffMax: 800,
    signals: true,
    ...options,
    environment: { ...env, fetch: server.fetch, ...(options.environment ?? {}) },
  });
  const signals = [];
  const events = [];
  view.addEventListener('signal', (e) => signals.push(e.detail.data));
  view.addEventListener('event', (e) => events.push(e.detail));
  return { view, signals, events };
}

test('a stream asks for signals only when told, ChatRooms does by default', async () => {
  const env = fakeClock();
  const { server } = signalServer();
  const plain = stream(env, server, { signals: false, roomId: 'r 1' });
  await plain.view.start();
  const rooms = new ChatRooms({
    getToken: async () => tokenFor('me'), shareAcrossTabs: false, environment: { ...env, fetch: server.fetch },
  });
  await rooms.start();
  await env.advance(0);
  assert.deepEqual(server.streams().map((c) => c.path), ['/api/chat/sse?roomId=r+1', '/api/chat/sse?signals=true']);
  plain.view.close();
  rooms.close();
});

test('signals are delivered as signals, never deduped away, never moving the resume point', async () => {
  const env = fakeClock();
  const { server, bodies } = signalServer();
  const { view, signals, events } = stream(env, server);
  await view.start();
  await env.advance(0);
  bodies[0].write('retry: 1\n\nid: 11\ndata: {"type":"read","roomId":"r","userId":"u","lastReadSeq":1}\n\n');
  // Two alike, and after an id: each is news, none has an id.
  bodies[0].write(sseSignal(typing('ann')) + sseSignal(typing('ann')) + sseSignal(presence('ann', true, 3)));
  await env.advance(0);
  assert.deepEqual(signals, [typing('ann'), typing('ann'), presence('ann', true, 3)]);
  assert.deepEqual(events.map((e) => e.id), ['11'], 'signals are not log events');
  assert.equal(view.lastEventId, '11');
  bodies[0].write('id: 12\ndata: {"type":"read","roomId":"r","userId":"u","lastReadSeq":2}\n\n');
  await env.advance(0);
  assert.deepEqual(events.map((e) => e.id), ['11', '12'], 'the next event is not taken for a repeat');
  // The watchdog reconnects: from the last event's id, whatever signals came after it.
  bodies[0].write(sseSignal(typing('bob')));
  await env.advance(1_500);
  assert.equal(server.streams()[1].headers['Last-Event-ID'], '12');
  assert.equal(server.streams()[1].path, '/api/chat/sse?signals=true');
  view.close();
});

test('follower tabs hear the signals the leader\'s stream brings', async () => {
  const env = fakeClock();
  const locks = fakeLocks();
  const { server, bodies } = signalServer();
  const shared = { shareAcrossTabs: true, heartbeatTimeout: 60_000, environment: { locks, BroadcastChannel } };
  const leader = stream(env, server, shared);
  const follower = stream(env, server, shared);
  await leader.view.start();
  await follower.view.start();
  await env.advance(0);
  bodies[0].write(`retry: 1\n\n${sseSignal(typing('ann'))}`);
  await new Promise((resolve) => setTimeout(resolve, 20));
  await env.advance(0);
  assert.equal(server.streams().length, 1);
  assert.deepEqual(follower.signals, [typing('ann')]);
  assert.equal(follower.view.lastEventId, '10');
  leader.view.close();
  follower.view.close();
});

test('presence keeps per user the highest version, snapshot or signal, whichever comes first', () => {
  const keeper = new Presence({});
  const changes = [];
  keeper.addEventListener('change', (e) => changes.push(e.detail.userIds));
  assert.equal(keeper.online('ann'), null, 'unknown at first');
  assert.deepEqual(keeper.applySnapshot({ version: 5, users: [{ userId: 'ann', online: true }, { userId: 'bob', online: false }] }), ['ann', 'bob']);
  assert.equal(keeper.apply(presence('ann', false, 4)), false, 'older than the snapshot: ignored');
  assert.equal(keeper.online('ann'), true);
  assert.equal(keeper.apply(presence('ann', false, 6)), true);
  assert.equal(keeper.online('ann'), false);
  // A snapshot read before that signal, answered after it: older news.
  assert.deepEqual(keeper.applySnapshot({ version: 5, users: [{ userId: 'ann', online: true }] }), []);
  assert.equal(keeper.online('ann'), false);
  // A later snapshot wins over every signal before it, for every user it lists.
  keeper.apply(presence('bob', true, 7));
  assert.deepEqual(keeper.applySnapshot({ version: 9, users: [{ userId: 'ann', online: true }, { userId: 'bob', online: true }] }), ['ann']);
  assert.equal(keeper.version('bob'), 9);
  assert.equal(keeper.apply(presence('bob', false, 8)), false);
  assert.equal(keeper.online('bob'), true);
  assert.equal(keeper.apply(typing('bob')), false, 'not a presence signal');
  assert.deepEqual(changes, [['ann', 'bob'], ['ann'], ['bob'], ['ann']]);
});

test('presence fetches the snapshot of watched users, and again after each reconnect', async () => {
  const env = fakeClock();
  const { server, bodies } = signalServer({
    snapshots: [
      { json: { version: 3, users: [{ userId: 'ann', online: true }] } },
      { json: { version: 8, users: [{ userId: 'ann', online: false }] } },
    ],
  });
  const { view } = stream(env, server);
  const keeper = new Presence({ stream: view });
  await view.start();
  await keeper.watch(['ann', 'ann']);
  assert.equal(keeper.online('ann'), true);
  assert.equal(server.calls.filter((c) => c.path.startsWith('/api/chat/presence')).at(-1).path, '/api/chat/presence?userIds=ann');
  await env.advance(0);
  bodies[0].write('retry: 1\n\n'); // live: asks again (the third answer is empty)
  await env.advance(0);
  assert.equal(keeper.online('ann'), false, 'the snapshot at going live');
  bodies[0].write(sseSignal(presence('ann', true, 9)));
  await env.advance(0);
  assert.equal(keeper.online('ann'), true, 'a newer signal');
  const before = server.calls.filter((c) => c.path.startsWith('/api/chat/presence')).length;
  await env.advance(1_500); // silent: the watchdog reconnects
  bodies[1].write('retry: 1\n\n');
  await env.advance(0);
  assert.equal(server.calls.filter((c) => c.path.startsWith('/api/chat/presence')).length, before + 1, 'fetched after the reconnect');
  keeper.close();
  bodies[1].write(sseSignal(presence('ann', false, 20)));
  await env.advance(0);
  assert.equal(keeper.online('ann'), true, 'closed: it listens no more');
  view.close();
});

test('presence asks for at most 100 users at a time', async () => {
  const asked = [];
  const api = { presence: async (ids) => (asked.push(ids.length), { version: 1, users: [] }) };
  const keeper = new Presence({ api });
  await keeper.watch(Array.from({ length: 250 }, (_, i) => `u${i}`));
  assert.deepEqual(asked, [100, 100, 50]);
});

test('typing shows until it expires, renewals extend it, and false or a message end it at once', async () => {
  const env = fakeClock();
  const keeper = new Typing({ me: 'me', environment: env });
  const changes = [];
  keeper.addEventListener('change', (e) => changes.push(e.detail.roomId));
  keeper.apply(typing('ann'));
  keeper.apply(typing('me'));
  assert.deepEqual(keeper.typists('r'), ['ann'], 'one\'s own typing is skipped');
  await env.advance(4_000);
  keeper.apply(typing('ann')); // renewed: 6 s from now
  await env.advance(4_000);
  assert.deepEqual(keeper.typists('r'), ['ann'], 'renewed, not expired');
  await env.advance(2_001);
  assert.deepEqual(keeper.typists('r'), [], 'expired by itself');
  assert.equal(env.pending(), 0);

  keeper.apply(typing('ann'));
  keeper.apply(typing('bob'));
  keeper.apply(typing('cy', true, 'other'));
  keeper.apply(typing('ann', false));
  assert.deepEqual(keeper.typists('r'), ['bob']);
  keeper.message({ roomId: 'r', authorId: 'bob', seq: 3 });
  assert.deepEqual(keeper.typists('r'), []);
  assert.deepEqual(keeper.typists('other'), ['cy']);
  assert.deepEqual(changes, ['r', 'r', 'r', 'r', 'other', 'r', 'r']);
  keeper.close();
  assert.equal(env.pending(), 0, 'close leaves no timer');
});

test('typing follows a stream: signals start it, a message from the typist ends it', async () => {
  const env = fakeClock();
  const { server, bodies } = signalServer();
  const { view } = stream(env, server);
  const keeper = new Typing({ me: 'me', stream: view, environment: env });
  await view.start();
  await env.advance(0);
  bodies[0].write(`retry: 1\n\n${sseSignal(typing('ann'))}`);
  await env.advance(0);
  assert.deepEqual(keeper.typists('r'), ['ann']);
  const message = { id: 'm1', roomId: 'r', seq: 1, authorId: 'ann', body: 'hi', clientId: null, createdAt: '' };
  bodies[0].write(`id: 11\ndata: ${JSON.stringify({ type: 'message', message })}\n\n`);
  await env.advance(0);
  assert.deepEqual(keeper.typists('r'), []);
  keeper.close();
  view.close();
});

test('the sender says typing at once, then at most every 3 s while input comes, and false once on stop', async () => {
  const env = fakeClock();
  const sent = [];
  const api = { typing: async (roomId, on) => sent.push([env.now(), roomId, on]) };
  let room = 'r';
  const sender = new TypingSender({ api, room: () => room, environment: env });
  for (let t = 0; t < 7_000; t += 250) {
    sender.input();
    await env.advance(250);
  }
  assert.deepEqual(sent, [[0, 'r', true], [3_000, 'r', true], [6_000, 'r', true]]);
  sender.stop();
  sender.stop();
  assert.deepEqual(sent.at(-1), [7_000, 'r', false]);
  assert.equal(sent.length, 4, 'false once');
  sender.input();
  assert.deepEqual(sent.at(-1), [7_000, 'r', true], 'typing again after a send says so at once');
  room = 's';
  sender.input();
  assert.deepEqual(sent.slice(-2), [[7_000, 'r', false], [7_000, 's', true]], 'another room: the first is told it stopped');
  room = null;
  const count = sent.length;
  sender.input();
  assert.equal(sent.length, count + 1, 'no room yet: only the stop of the last');
  assert.equal(env.pending(), 0, 'no timers');
});

test('a sender whose notices fail (429) throws nothing and goes on throttling', async () => {
  const env = fakeClock();
  let calls = 0;
  const api = new ChatApi({
    getToken: async () => tokenFor('me'),
    environment: env,
    fetch: async () => {
      calls += 1;
      return new Response('{"error":{"code":"rate_limited","message":"slow down"}}', { status: 429 });
    },
  });
  const sender = new TypingSender({ api, room: 'r', environment: env });
  sender.input();
  sender.input();
  await env.advance(0);
  assert.equal(calls, 1);
  const error = await api.typing('r', true).catch((e) => e);
  assert.equal(error.status, 429);
});
