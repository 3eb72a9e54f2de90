// Unit tests of edits, deletions and seen receipts in the client: the API
// calls and their refusals, the later of two versions of a message, who has
// seen a message, and ChatRooms keeping each room's last message and
// readers' cursors current from the events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatApi, ChatError, ChatRooms, newerVersion, seenBy } from '../chat-client.js';
import { fakeClock, fakeServer, sseBody, streamResponse, tokenFor } from './fakes.mjs';

const message = (seq, authorId = 'alice', more = {}) => ({
  id: `m${seq}`, roomId: 'r', seq, authorId, body: `body ${seq}`, clientId: null, createdAt: '2026-01-01T10:00:00Z', ...more,
});

test('editMessage and deleteMessage call the message\'s own path, and a refusal carries the server\'s code and words', async () => {
  const env = fakeClock();
  const server = fakeServer((path, init) => {
    if (init.method === 'PATCH' && path.endsWith('/m1')) {
      return { json: message(1, 'alice', { body: JSON.parse(init.body).body, editedAt: '2026-01-01T10:05:00Z' }) };
    }
    if (init.method === 'PATCH') {
      return { status: 403, json: { error: { code: 'edit_window_closed', message: 'a message may be edited only shortly after it was sent' } } };
    }
    return { json: message(1, 'alice', { body: '', deletedAt: '2026-01-01T10:06:00Z', deletedBy: 'agent' }) };
  });
  const api = new ChatApi({ getToken: async () => 'token', environment: { ...env, fetch: server.fetch } });
  const edited = await api.editMessage('r 1', 'm1', 'fixed');
  assert.equal(edited.body, 'fixed');
  assert.equal(server.calls[0].path, '/api/chat/rooms/r%201/messages/m1');
  assert.deepEqual(JSON.parse(server.calls[0].body), { body: 'fixed' });
  const refused = await api.editMessage('r', 'm2', 'late').catch((error) => error);
  assert.ok(refused instanceof ChatError);
  assert.equal(refused.status, 403);
  assert.equal(refused.code, 'edit_window_closed');
  assert.equal(refused.message, 'a message may be edited only shortly after it was sent', 'for people to read');
  assert.equal(refused.retryable, false);
  const tombstone = await api.deleteMessage('r', 'm1');
  assert.equal(tombstone.deletedBy, 'agent');
  assert.equal(server.calls[2].path, '/api/chat/rooms/r/messages/m1');
  assert.equal(server.calls.map((call) => call.body)[2], undefined, 'a DELETE has no body');
});

test('of two versions of a message the later wins: a deletion is final, else the later edit', () => {
  const sent = message(1);
  const edited = message(1, 'alice', { body: 'b', editedAt: '2026-01-01T10:01:00Z' });
  const again = message(1, 'alice', { body: 'c', editedAt: '2026-01-01T10:02:00Z' });
  const deleted = message(1, 'alice', { body: '', deletedAt: '2026-01-01T10:00:30Z', deletedBy: 'alice' });
  assert.equal(newerVersion(sent, edited), edited);
  assert.equal(newerVersion(edited, sent), edited, 'an older version arriving late');
  assert.equal(newerVersion(again, edited), again);
  assert.equal(newerVersion(again, deleted), deleted, 'whatever the times say');
  assert.equal(newerVersion(deleted, again), deleted);
  assert.equal(newerVersion(null, sent), sent);
  assert.equal(newerVersion(sent, undefined), sent);
  assert.equal(newerVersion(sent, { ...sent }), sent, 'the same version: the one in hand');
});

test('a message is seen by those other than its author whose cursor is at or past it', () => {
  const cursors = { alice: 5, agent: 4, bot: 3 };
  assert.deepEqual(seenBy(cursors, message(4, 'alice')), ['agent']);
  assert.deepEqual(seenBy(cursors, message(3, 'alice')), ['agent', 'bot']);
  assert.deepEqual(seenBy(cursors, message(5, 'alice')), [], 'its author reading it is no receipt');
  assert.deepEqual(seenBy(cursors, message(5, 'agent')), ['alice']);
  assert.deepEqual(seenBy(undefined, message(1)), []);
  assert.deepEqual(seenBy(cursors, null), []);
});

test('ChatRooms keeps each room\'s last message at its newest version and every reader\'s cursor, from the events', async () => {
  const env = fakeClock();
  const sse = sseBody();
  const room = (id, last, readCursors) => ({
    id, name: id, memberIds: ['alice'], lastMessage: last, unreadCount: 0, lastReadSeq: last?.seq ?? 0, readCursors,
  });
  const server = fakeServer((path) => {
    if (path.startsWith('/api/chat/sse')) return streamResponse(sse);
    return {
      json: {
        rooms: [room('r', message(3), { alice: 3, agent: 3 }), room('q', message(1, 'bob', { roomId: 'q' }), { bob: 1 })],
        totalUnread: 0, nextPageToken: null, lastEventId: '100',
      },
    };
  });
  const view = new ChatRooms({ getToken: async () => tokenFor('agent', 'admin'), shareAcrossTabs: false, environment: { ...env, fetch: server.fetch } });
  await view.start();
  await env.advance(0);
  let id = 100;
  const send = (data) => sse.write(`${id === 100 ? 'retry: 1\n\n' : ''}id: ${(id += 1)}\ndata: ${JSON.stringify(data)}\n\n`);
  const order = () => view.getSnapshot().rooms.map((entry) => entry.room.id);
  assert.deepEqual(order(), ['r', 'q']);

  send({ type: 'message', message: message(4, 'agent') });
  send({ type: 'message_edited', message: message(3, 'alice', { body: 'fixed', editedAt: '2026-01-01T10:01:00Z' }) });
  await env.advance(0);
  assert.equal(view.room('r').lastMessage.body, 'body 4', 'not the last message: the room is as it was');
  assert.deepEqual(view.room('r').readCursors, { alice: 3, agent: 4 }, 'posting reads the room');
  assert.deepEqual(seenBy(view.room('r').readCursors, view.room('r').lastMessage), []);

  send({ type: 'read', roomId: 'r', userId: 'alice', lastReadSeq: 4 });
  send({ type: 'read', roomId: 'r', userId: 'alice', lastReadSeq: 2 }); // never back
  await env.advance(0);
  assert.deepEqual(seenBy(view.room('r').readCursors, view.room('r').lastMessage), ['alice']);

  send({ type: 'message_edited', message: message(1, 'bob', { roomId: 'q', body: 'edited', editedAt: '2026-01-01T10:02:00Z' }) });
  await env.advance(0);
  assert.equal(view.room('q').lastMessage.body, 'edited');
  assert.deepEqual(order(), ['r', 'q'], 'an edit is no activity: the room keeps its place');

  send({ type: 'message_deleted', message: message(4, 'agent', { body: '', deletedAt: '2026-01-01T10:03:00Z', deletedBy: 'agent' }) });
  await env.advance(0);
  assert.equal(view.room('r').lastMessage.deletedAt, '2026-01-01T10:03:00Z');
  // A room event carries the room as it was then (its last message too), and no cursors.
  const { unreadCount, lastReadSeq, readCursors, memberIds, ...inEvent } = room('r', message(4, 'agent'));
  send({ type: 'room', change: 'member_added', userId: 'carol', room: inEvent });
  await env.advance(0);
  assert.deepEqual(view.room('r').memberIds, ['alice', 'carol']);
  assert.equal(view.room('r').lastMessage.body, '', 'still the tombstone');
  assert.deepEqual(view.room('r').readCursors, { alice: 4, agent: 4 });
  view.close();
});
