// Unit tests of room deletion in the client: the API call and its refusals,
// the counter and ChatRooms dropping a deleted room for good (never fetching
// it), and a room's view stopping at its room's deletion instead of
// reconnecting to a room that is gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatApi, ChatError, ChatRooms, ChatStream, UnreadCounter, roomAfter } from '../chat-client.js';
import { fakeClock, fakeServer, hanging, sseBody, streamResponse, tokenFor } from './fakes.mjs';

const message = (seq, roomId = 'r', authorId = 'x') => ({
  type: 'message', message: { id: `${roomId}${seq}`, roomId, seq, authorId, body: '', clientId: null, createdAt: '' },
});
const room = (id, seq, unreadCount) => ({
  id, name: id, memberIds: ['alice'], createdAt: '', updatedAt: '', unreadCount,
  lastMessage: seq ? { id: `${id}${seq}`, roomId: id, seq, authorId: 'x' } : null,
});
/** The event the server logs when a room is deleted: no members, no last message. */
const deletion = (id) => ({
  type: 'room', change: 'deleted', room: { id, name: id, createdAt: '', updatedAt: '', lastMessage: null },
});
const sse = (id, data) => `id: ${id}\ndata: ${JSON.stringify(data)}\n\n`;

test('deleteRoom calls DELETE on the room, and a refusal carries the server\'s code', async () => {
  const gone = { roomId: 'r 1', deletedAt: '2026-01-01T10:00:00Z', deletedBy: 'agent' };
  const server = fakeServer((path) => {
    if (path.endsWith('/mine')) return { status: 403, json: { error: { code: 'forbidden', message: 'only admins may delete a room' } } };
    if (path.endsWith('/nope')) return { status: 404, json: { error: { code: 'room_not_found', message: 'no such room' } } };
    return { json: gone };
  });
  const api = new ChatApi({ getToken: async () => 'token', environment: { ...fakeClock(), fetch: server.fetch } });
  assert.deepEqual(await api.deleteRoom('r 1'), gone);
  assert.equal(server.calls[0].path, '/api/chat/rooms/r%201');
  assert.equal(server.calls[0].body, undefined, 'a DELETE has no body');
  for (const [roomId, status, code] of [['mine', 403, 'forbidden'], ['nope', 404, 'room_not_found']]) {
    const refused = await api.deleteRoom(roomId).catch((error) => error);
    assert.ok(refused instanceof ChatError);
    assert.equal(refused.status, status);
    assert.equal(refused.code, code);
    assert.equal(refused.retryable, false);
  }
});

test('a deleted room leaves the counts of a user and an admin for good, and is never to be fetched', () => {
  for (const admin of [false, true]) {
    const counter = new UnreadCounter({ me: 'me', admin });
    counter.applyRoom({ id: 'r', lastMessage: { seq: 3 }, unreadCount: 3 });
    counter.applyRoom({ id: 's', lastMessage: { seq: 1 }, unreadCount: 1 });
    assert.equal(counter.applyEvent(deletion('r')), 'r');
    assert.deepEqual([...counter.rooms.keys()], ['s']);
    assert.equal(counter.total, 1);
    // Nothing of it comes after its deletion; if something did, it would not count.
    assert.equal(counter.applyEvent(message(4)), null);
    assert.equal(counter.applyEvent({ type: 'read', roomId: 'r', userId: 'me', lastReadSeq: 4 }), null);
    assert.deepEqual(counter.unknownRooms(), [], 'nothing to fetch');
    assert.equal(counter.total, 1);
  }
});

test('a deletion leaves no room after it, even when its members were known', () => {
  const known = room('r', 1, 0);
  assert.equal(roomAfter(known, deletion('r')), null);
  assert.equal(roomAfter(null, deletion('r')), null);
});

test('ChatRooms drops a deleted room from its rooms and total at once, and fetches nothing of it', async () => {
  const env = fakeClock();
  const body = sseBody();
  let answerFetch;
  const server = fakeServer((path, init) => {
    if (path.startsWith('/api/chat/sse')) return streamResponse(body);
    if (path.startsWith('/api/chat/events')) return hanging(init);
    // A room that moved while the snapshot was paged: fetched, and deleted before the answer.
    if (path === '/api/chat/rooms/q') return new Promise((resolve) => (answerFetch = resolve));
    if (path.startsWith('/api/chat/rooms/')) return { status: 404, json: { error: { code: 'room_not_found', message: 'no' } } };
    return { json: { rooms: [room('r', 2, 2), room('s', 1, 1)], totalUnread: 3, nextPageToken: null, lastEventId: '100' } };
  });
  const rooms = new ChatRooms({
    getToken: async () => tokenFor('agent', 'admin'),
    shareAcrossTabs: false,
    environment: { ...env, fetch: server.fetch },
  });
  const changed = [];
  rooms.addEventListener('change', (event) => changed.push(event.detail.roomIds));
  await rooms.start();
  await env.advance(0);
  const ids = () => rooms.getSnapshot().rooms.map((entry) => entry.room.id);
  assert.deepEqual(ids(), ['r', 's']);

  body.write(`retry: 1\n\n${sse(101, message(5, 'q'))}`);
  await env.advance(0);
  assert.ok(answerFetch, 'q is fetched');
  body.write(sse(102, deletion('r')) + sse(103, deletion('q')));
  await env.advance(0);
  assert.deepEqual(ids(), ['s']);
  assert.equal(rooms.getSnapshot().totalUnread, 1);
  assert.equal(rooms.room('r'), null);
  assert.deepEqual(changed.at(-1), ['r', 'q']);
  answerFetch({ json: room('q', 5, 5) });
  await env.advance(0);
  assert.deepEqual(ids(), ['s'], 'the answer of a fetch begun before the deletion does not bring it back');
  assert.equal(rooms.getSnapshot().totalUnread, 1);

  // A stray event of a deleted room (none should come) is not learnt.
  body.write(sse(104, message(6, 'r')));
  await env.advance(10_000);
  assert.deepEqual(ids(), ['s']);
  assert.deepEqual(
    server.calls.map((call) => call.path).filter((path) => /^\/api\/chat\/rooms\/[^?]/.test(path)),
    ['/api/chat/rooms/q'],
    'no deleted room is fetched',
  );
  assert.equal(rooms.stream.status, 'live', 'the stream of every room goes on');
  rooms.close();
});

test('a room\'s view delivers its room\'s deletion, then stops with room_deleted and never reconnects', async () => {
  const env = fakeClock();
  const bodies = [];
  const server = fakeServer((path) => {
    if (path.startsWith('/api/chat/sse')) {
      bodies.push(sseBody());
      return streamResponse(bodies.at(-1));
    }
    if (path.startsWith('/api/chat/rooms/r/messages')) return { json: { messages: [], hasMore: false, lastEventId: '100' } };
    return { status: 404, json: { error: { code: 'room_not_found', message: 'no' } } };
  });
  const stream = new ChatStream({
    getToken: async () => tokenFor('alice'),
    roomId: 'r',
    shareAcrossTabs: false,
    heartbeatTimeout: 1_000,
    environment: { ...env, fetch: server.fetch },
  });
  const seen = [];
  stream.addEventListener('event', (event) => seen.push(`event ${event.detail.data.change ?? event.detail.data.type}`));
  stream.addEventListener('error', (event) => seen.push(`error ${event.detail.error.status} ${event.detail.error.code}`));
  await stream.start();
  await env.advance(0);
  bodies[0].write(`retry: 1\n\n${sse(101, message(1))}`);
  await env.advance(100);
  bodies[0].write(sse(102, deletion('r')));
  bodies[0].end(); // as the server does
  await env.advance(0);
  assert.deepEqual(seen, ['event message', 'event deleted', 'error 404 room_deleted']);
  await env.advance(30_000);
  assert.equal(server.streams().length, 1, 'no reconnect to a room that is gone');
  assert.equal(server.polls().length, 0, 'nor a poll');
  assert.deepEqual(stream.pendingTimers(), []);
});

test('the view of every room goes on past a deletion', async () => {
  const env = fakeClock();
  const body = sseBody();
  const server = fakeServer((path) => {
    if (path.startsWith('/api/chat/sse')) return streamResponse(body);
    return { json: { rooms: [], totalUnread: 0, nextPageToken: null, lastEventId: '100' } };
  });
  const stream = new ChatStream({
    getToken: async () => tokenFor('agent', 'admin'), shareAcrossTabs: false, environment: { ...env, fetch: server.fetch },
  });
  const errors = [];
  stream.addEventListener('error', (event) => errors.push(event.detail.error));
  await stream.start();
  await env.advance(0);
  body.write(`retry: 1\n\n${sse(101, deletion('r'))}`);
  await env.advance(100);
  body.write(sse(102, message(1, 's')));
  await env.advance(0);
  assert.deepEqual(errors, []);
  assert.equal(stream.lastEventId, '102');
  assert.equal(stream.status, 'live');
  stream.close();
});
