// Unit tests of exact unread counting: UnreadCounter against a model of the
// server under random histories, and ChatRooms over a scripted server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatRooms, UnreadCounter, roomAfter } from '../chat-client.js';
import { fakeClock, fakeLocks, fakeServer, hanging, sseBody, streamResponse, tokenFor } from './fakes.mjs';

/** A small deterministic random source. */
function seeded(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state * 1_664_525 + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

/**
 * A history of one user's rooms as the server keeps it: messages by them and
 * by others, their reads and others', edits, and deletions of any message
 * (theirs or others', above or below their cursor), which rewrite the
 * message's earlier events as the server's log does; each step logs at most
 * one event, after which the state can be snapshotted. The server's count
 * leaves deleted messages out.
 */
function history(random, steps) {
  const rooms = new Map(['a', 'b'].map((id) => [id, { seq: 0, cursor: 0, messages: [] }]));
  const log = [];
  const snapshots = [];
  const unread = (r) => r.messages.filter((m) => m.seq > r.cursor && !m.deletedAt).length;
  const snapshot = () => ({
    id: log.length,
    rooms: [...rooms].map(([id, r]) => ({
      id,
      lastMessage: r.seq ? { ...r.messages.at(-1) } : null,
      unreadCount: unread(r),
      lastReadSeq: r.cursor,
    })),
  });
  const post = (roomId, room, authorId) => {
    room.seq += 1;
    const message = { roomId, seq: room.seq, authorId, id: `${roomId}${room.seq}` };
    room.messages.push(message);
    log.push({ type: 'message', message: { ...message } });
  };
  /** The message's earlier events now carry its latest version. */
  const rewrite = (message) => {
    for (const event of log) {
      if (event.message?.id === message.id && event.type !== 'message_deleted') event.message = { ...message };
    }
  };
  snapshots.push(snapshot());
  for (let i = 0; i < steps; i += 1) {
    const roomId = random() < 0.5 ? 'a' : 'b';
    const room = rooms.get(roomId);
    const kind = random();
    const any = room.messages[Math.floor(random() * room.messages.length)];
    if (kind < 0.35) {
      post(roomId, room, 'other');
    } else if (kind < 0.5) {
      post(roomId, room, 'me');
      room.cursor = room.seq; // posting reads the room
    } else if (kind < 0.65) {
      const to = Math.floor(random() * (room.seq + 1));
      if (to > room.cursor) {
        room.cursor = to;
        log.push({ type: 'read', roomId, userId: 'me', lastReadSeq: to });
      }
    } else if (kind < 0.72) {
      log.push({ type: 'read', roomId, userId: 'someone', lastReadSeq: room.seq });
    } else if (kind < 0.78) {
      if (any && !any.deletedAt) {
        any.editedAt = `t${i}`;
        rewrite(any);
        log.push({ type: 'message_edited', message: { ...any } });
      }
    } else if (any && !any.deletedAt) {
      // Deleting again would change nothing and log nothing.
      Object.assign(any, { deletedAt: `t${i}`, deletedBy: any.authorId });
      delete any.editedAt;
      rewrite(any);
      log.push({ type: 'message_deleted', message: { ...any } });
    }
    // The state after each event: `snapshots[n]` has seen the first n.
    if (log.length === snapshots.length) snapshots.push(snapshot());
  }
  return { rooms, log, snapshots, unread };
}

test('counts are exact from any snapshot and the events after it, deletions, repeats, overlaps and refetches included', () => {
  const fetched = { answers: 0, stale: 0 };
  for (let seed = 1; seed <= 500; seed += 1) {
    const random = seeded(seed);
    const { rooms, log, snapshots, unread } = history(random, 60);
    const counter = new UnreadCounter({ me: 'me' });
    // A snapshot taken at some point; events from a little before it (an
    // overlap, as when a stream resumes from an older id), some twice.
    const taken = snapshots[Math.floor(random() * snapshots.length)];
    for (const room of taken.rooms) counter.applyRoom(room);
    // Rooms whose count is unknown are fetched as ChatRooms does: one fetch
    // a room at a time, begun after the events so far, answered with the
    // room at some moment since (the server may be ahead of the stream, and
    // its time only moves forward), and delivered after a few more events,
    // or none.
    const fetches = new Map();
    let serverNow = taken.id;
    const answer = (fetch) => {
      fetches.delete(fetch.roomId);
      counter.applyRoom(fetch.room, fetch.asOf);
      fetched.answers += 1;
      if (!counter.rooms.get(fetch.roomId).known) fetched.stale += 1;
    };
    const fetchUnknown = (position) => {
      for (const roomId of counter.unknownRooms()) {
        if (fetches.has(roomId)) continue;
        const since = Math.max(serverNow, position);
        const moment = snapshots[since + Math.floor(random() * (snapshots.length - since))];
        serverNow = moment.id;
        const room = moment.rooms.find((r) => r.id === roomId);
        fetches.set(roomId, { roomId, asOf: counter.asOf(roomId), room, due: position + Math.floor(random() * 4) });
      }
    };
    for (let i = Math.max(0, taken.id - Math.floor(random() * 5)); i < log.length; i += 1) {
      counter.applyEvent(log[i]);
      if (random() < 0.2) counter.applyEvent(log[i]);
      for (const fetch of [...fetches.values()]) if (fetch.due <= i + 1) answer(fetch);
      fetchUnknown(i + 1);
    }
    for (const fetch of [...fetches.values()]) answer(fetch);
    // Fetched again while unknown: with no event in between, once is enough.
    for (let round = 0; counter.unknownRooms().length > 0; round += 1) {
      assert.ok(round < 1, `seed ${seed}: still unknown after a fetch with nothing in between`);
      fetchUnknown(log.length);
      for (const fetch of [...fetches.values()]) answer(fetch);
    }
    // A late, older snapshot changes nothing either.
    for (const room of snapshots[Math.floor(random() * snapshots.length)].rooms) counter.applyRoom(room);
    for (const [id, room] of rooms) {
      assert.equal(counter.unread(id), unread(room), `seed ${seed}, room ${id}`);
    }
    assert.equal(counter.total, [...rooms.values()].reduce((sum, r) => sum + unread(r), 0));
  }
  // The property met what it is about: fetches, and answers a change made stale.
  assert.ok(fetched.answers > 200, `${fetched.answers} fetches`);
  assert.ok(fetched.stale > 10, `${fetched.stale} stale answers`);
});

test('a deletion of an unread message makes the room unknown; a fetch begun before another change does not settle it', () => {
  const counter = new UnreadCounter({ me: 'me' });
  counter.applyRoom({ id: 'r', lastMessage: { seq: 5 }, unreadCount: 3, lastReadSeq: 1 });
  assert.equal(counter.unread('r'), 3, 'one of the four past the cursor is deleted');
  counter.applyEvent({ type: 'message_deleted', message: { roomId: 'r', seq: 1, authorId: 'other' } });
  counter.applyEvent({ type: 'message_deleted', message: { roomId: 'r', seq: 4, authorId: 'me' } });
  assert.deepEqual(counter.unknownRooms(), [], 'read already, or the caller\'s own');
  counter.applyEvent({ type: 'message_deleted', message: { roomId: 'r', seq: 3, authorId: 'other' } });
  assert.deepEqual(counter.unknownRooms(), ['r']);
  const asOf = counter.asOf('r');
  counter.applyEvent({ type: 'message_deleted', message: { roomId: 'r', seq: 2, authorId: 'other' } });
  counter.applyRoom({ id: 'r', lastMessage: { seq: 5 }, unreadCount: 2, lastReadSeq: 1 }, asOf);
  assert.deepEqual(counter.unknownRooms(), ['r'], 'the answer may predate the second deletion');
  counter.applyRoom({ id: 'r', lastMessage: { seq: 5 }, unreadCount: 1, lastReadSeq: 1 }, counter.asOf('r'));
  assert.deepEqual(counter.unknownRooms(), []);
  assert.equal(counter.unread('r'), 1);
  counter.applyEvent({ type: 'read', roomId: 'r', userId: 'me', lastReadSeq: 3 });
  assert.deepEqual(counter.unknownRooms(), ['r'], 'read past some of the deleted ones: which, is not known');
  counter.applyRoom({ id: 'r', lastMessage: { seq: 5 }, unreadCount: 1, lastReadSeq: 3 }, counter.asOf('r'));
  counter.applyEvent({ type: 'message', message: { roomId: 'r', seq: 6, authorId: 'other' } });
  assert.equal(counter.unread('r'), 2);
  counter.applyEvent({ type: 'read', roomId: 'r', userId: 'me', lastReadSeq: 6 });
  assert.deepEqual(counter.unknownRooms(), [], 'read to the end: nothing deleted is past the cursor');
  assert.equal(counter.unread('r'), 0);
  counter.applyEvent({ type: 'message', message: { roomId: 'r', seq: 7, authorId: 'other' } });
  counter.applyEvent({ type: 'message', message: { roomId: 'r', seq: 8, authorId: 'other' } });
  // A listing taken later with the same seq and cursor differs only by deletions since.
  counter.applyRoom({ id: 'r', lastMessage: { seq: 8 }, unreadCount: 1, lastReadSeq: 6 });
  assert.equal(counter.unread('r'), 1);
  counter.applyRoom({ id: 'r', lastMessage: { seq: 8 }, unreadCount: 2, lastReadSeq: 6 });
  assert.equal(counter.unread('r'), 1, 'and an older one changes nothing');
});

test('a message the user posts from another device clears that room', () => {
  const counter = new UnreadCounter({ me: 'me' });
  counter.applyRoom({ id: 'r', lastMessage: { seq: 3 }, unreadCount: 3 });
  assert.equal(counter.total, 3);
  counter.applyEvent({ type: 'message', message: { roomId: 'r', seq: 4, authorId: 'me' } });
  assert.equal(counter.total, 0);
});

test('a removed user loses the room; an admin keeps it; a joined room is fetched to learn the cursor', () => {
  const user = new UnreadCounter({ me: 'me' });
  const admin = new UnreadCounter({ me: 'me', admin: true });
  for (const counter of [user, admin]) {
    counter.applyRoom({ id: 'r', lastMessage: { seq: 2 }, unreadCount: 2 });
    counter.applyEvent({ type: 'room', room: { id: 'r', lastMessage: { seq: 2 } }, change: 'member_removed', userId: 'me' });
  }
  assert.equal(user.total, 0);
  assert.deepEqual([...user.rooms.keys()], []);
  assert.equal(admin.total, 2);
  user.applyEvent({ type: 'room', room: { id: 'j', lastMessage: { seq: 5 } }, change: 'member_added', userId: 'me' });
  assert.deepEqual(user.unknownRooms(), ['j']);
  user.applyRoom({ id: 'j', lastMessage: { seq: 5 }, unreadCount: 1 });
  assert.deepEqual(user.unknownRooms(), []);
  assert.equal(user.unread('j'), 1);
  user.applyEvent({ type: 'room', room: { id: 'n', lastMessage: null }, change: 'created' });
  assert.deepEqual(user.unknownRooms(), [], 'a new room has nothing unread');
});

test('a membership change applies its one member to the members known before', () => {
  const known = { id: 'r', name: 'old', memberIds: ['ann', 'bob'] };
  const change = (what, userId) => ({ type: 'room', change: what, userId, room: { id: 'r', name: 'new' } });
  assert.deepEqual(roomAfter(known, change('member_added', 'cat')), { id: 'r', name: 'new', memberIds: ['ann', 'bob', 'cat'] });
  assert.deepEqual(roomAfter(known, change('member_added', 'bob')).memberIds, ['ann', 'bob'], 'once');
  assert.deepEqual(roomAfter(known, change('member_removed', 'ann')).memberIds, ['bob']);
  assert.equal(roomAfter(null, change('member_added', 'cat')), null, 'unknown before: fetch the room');
  const created = { type: 'room', change: 'created', room: { id: 'r', memberIds: ['ann'] } };
  assert.deepEqual(roomAfter(null, created), created.room);
});

test('ChatRooms keeps every room of every page, newest activity first, and learns rooms that moved while paging', async () => {
  const env = fakeClock();
  const sse = sseBody();
  const room = (id, seq, unreadCount) => ({ id, name: id, lastMessage: seq ? { id: `${id}${seq}`, roomId: id, seq } : null, unreadCount });
  const server = fakeServer((path, init) => {
    if (path.startsWith('/api/chat/sse')) return streamResponse(sse);
    if (path.startsWith('/api/chat/events')) return hanging(init);
    if (path === '/api/chat/rooms/x') return { json: room('x', 9, 4) };
    if (path.includes('pageToken')) return { json: { rooms: [room('c', 1, 1)], totalUnread: 0, nextPageToken: null, lastEventId: '20' } };
    return { json: { rooms: [room('a', 2, 2), room('b', 1, 0)], totalUnread: 3, nextPageToken: 't', lastEventId: '10' } };
  });
  const rooms = new ChatRooms({
    getToken: async () => tokenFor('me'),
    shareAcrossTabs: false,
    environment: { ...env, fetch: server.fetch },
  });
  let changes = 0;
  rooms.subscribe(() => (changes += 1));
  await rooms.start();
  await env.advance(0);
  const names = () => rooms.getSnapshot().rooms.map((entry) => `${entry.room.id}:${entry.unread}`);
  assert.deepEqual(names(), ['a:2', 'b:0', 'c:1']);
  assert.equal(rooms.getSnapshot().totalUnread, 3);
  const before = rooms.getSnapshot();
  assert.equal(rooms.getSnapshot(), before, 'the same object until something changes');

  sse.write('retry: 1\n\n');
  const msg = (id, roomId, seq, authorId) =>
    `id: ${id}\ndata: ${JSON.stringify({ type: 'message', message: { id: `${roomId}${seq}`, roomId, seq, authorId, body: '' } })}\n\n`;
  sse.write(msg(11, 'c', 2, 'other'));
  sse.write(msg(12, 'b', 2, 'me'));
  // A room that moved from page 2 to page 1 between the two requests.
  sse.write(msg(13, 'x', 10, 'other'));
  await env.advance(0);
  assert.deepEqual(names(), ['x:5', 'b:0', 'c:2', 'a:2'], 'x is fetched: 9 - 4 read, then one more');
  assert.equal(rooms.getSnapshot().totalUnread, 9);
  assert.notEqual(rooms.getSnapshot(), before);
  assert.ok(changes >= 4);
  rooms.close();
});

const message = (seq, roomId = 'r') => ({
  type: 'message', message: { id: `m${seq}`, roomId, seq, authorId: 'x', body: '', clientId: null, createdAt: '' },
});
const roomR = (seq, unread) => ({
  id: 'r', name: 'r', lastMessage: seq ? { id: `m${seq}`, roomId: 'r', seq, authorId: 'x' } : null, unreadCount: unread,
});

test('an event newer than the snapshot reloaded after a reset is not lost to it', async () => {
  const env = fakeClock();
  const sse = sseBody();
  let snapshots = 0;
  let release;
  const server = fakeServer((path) => {
    if (path.startsWith('/api/chat/sse')) return streamResponse(sse);
    snapshots += 1;
    if (snapshots === 1) return { json: { rooms: [roomR(0, 0)], totalUnread: 0, nextPageToken: null, lastEventId: '100' } };
    return new Promise((resolve) => (release = () => resolve({
      json: { rooms: [roomR(1, 1)], totalUnread: 1, nextPageToken: null, lastEventId: '150' },
    })));
  });
  const view = new ChatRooms({ getToken: async () => tokenFor('me'), shareAcrossTabs: false, environment: { ...env, fetch: server.fetch } });
  await view.start();
  await env.advance(0);
  sse.write('retry: 1\n\nid: 150\ndata: {"type":"reset","reason":"event_id_expired"}\n\n');
  await env.advance(0);
  // Committed after the reload read its snapshot, delivered before it came back.
  sse.write(`id: 151\ndata: ${JSON.stringify(message(2))}\n\n`);
  await env.advance(0);
  release();
  await env.advance(0);
  assert.equal(view.unread('r'), 2, 'the snapshot, then again what came after it');
  view.close();
});

test('a tab that joins while events flow loses none of them to its own snapshot', async () => {
  const env = fakeClock();
  const locks = fakeLocks();
  const sse = sseBody();
  let snapshots = 0;
  let release;
  const server = fakeServer((path) => {
    if (path.startsWith('/api/chat/sse')) return streamResponse(sse);
    if (path === '/api/chat/rooms/r') return { json: roomR(1, 1) };
    snapshots += 1;
    const answer = { json: { rooms: [roomR(0, 0)], totalUnread: 0, nextPageToken: null, lastEventId: '100' } };
    if (snapshots === 1) return answer;
    return new Promise((resolve) => (release = () => resolve(answer)));
  });
  const options = {
    getToken: async () => tokenFor('me'),
    shareAcrossTabs: true,
    heartbeatTimeout: 60_000,
    environment: { ...env, fetch: server.fetch, locks, BroadcastChannel },
  };
  const leader = new ChatRooms(options);
  await leader.start();
  await env.advance(0);
  sse.write('retry: 1\n\n');
  const follower = new ChatRooms(options);
  const started = follower.start();
  await env.advance(0);
  sse.write(`id: 101\ndata: ${JSON.stringify(message(1))}\n\n`);
  await env.advance(0);
  release(); // the follower's own snapshot, read before event 101
  await started;
  await env.advance(0);
  assert.equal(leader.unread('r'), 1);
  assert.equal(follower.unread('r'), 1);
  leader.close();
  follower.close();
});

test('a room learnt after the caller left it does not come back as unread', async () => {
  const env = fakeClock();
  const sse = sseBody();
  let release;
  const server = fakeServer((path) => {
    if (path.startsWith('/api/chat/sse')) return streamResponse(sse);
    if (path.startsWith('/api/chat/rooms/q')) {
      return new Promise((resolve) => (release = () => resolve({
        json: { id: 'q', name: 'q', lastMessage: { seq: 3 }, unreadCount: 3 },
      })));
    }
    return { json: { rooms: [], totalUnread: 0, nextPageToken: null, lastEventId: '100' } };
  });
  const view = new ChatRooms({ getToken: async () => tokenFor('me'), shareAcrossTabs: false, environment: { ...env, fetch: server.fetch } });
  await view.start();
  await env.advance(0);
  sse.write(`retry: 1\n\nid: 101\ndata: ${JSON.stringify(message(3, 'q'))}\n\n`);
  await env.advance(0);
  const removed = { type: 'room', change: 'member_removed', userId: 'me', room: { id: 'q', memberIds: [] } };
  sse.write(`id: 102\ndata: ${JSON.stringify(removed)}\n\n`);
  await env.advance(0);
  release(); // the fetch started for message 101 answers now
  await env.advance(0);
  assert.equal(view.getSnapshot().totalUnread, 0);
  assert.deepEqual(view.getSnapshot().rooms, []);
  view.close();
});

test('a room whose fetch fails is fetched again soon, and a room that is not the caller\'s is dropped', async () => {
  const env = fakeClock();
  const sse = sseBody();
  let tries = 0;
  const server = fakeServer((path, init) => {
    if (path.startsWith('/api/chat/sse')) return streamResponse(sse);
    if (path.startsWith('/api/chat/events')) return hanging(init);
    if (path === '/api/chat/rooms/x') {
      tries += 1;
      if (tries === 1) return { status: 503, json: {}, headers: { 'retry-after': '2' } };
      return { json: { id: 'x', name: 'x', lastMessage: { seq: 10 }, unreadCount: 1 } };
    }
    if (path === '/api/chat/rooms/y') return { status: 404, json: { error: { code: 'room_not_found', message: 'no' } } };
    return { json: { rooms: [], totalUnread: 0, nextPageToken: null, lastEventId: '100' } };
  });
  const view = new ChatRooms({ getToken: async () => tokenFor('me'), shareAcrossTabs: false, environment: { ...env, fetch: server.fetch } });
  await view.start();
  await env.advance(0);
  sse.write(`retry: 1\n\nid: 101\ndata: ${JSON.stringify(message(10, 'x'))}\n\n`);
  sse.write(`id: 102\ndata: ${JSON.stringify(message(3, 'y'))}\n\n`);
  await env.advance(0);
  assert.equal(tries, 1);
  assert.equal(view.unread('y'), 0, 'y is not the caller\'s: dropped');
  assert.equal(view.getSnapshot().totalUnread, 10, 'x unknown yet: counted whole');
  await env.advance(3_000); // Retry-After 2 s, jittered (× 1.5 with this clock)
  assert.equal(tries, 2, 'tried again without waiting for another event');
  assert.equal(view.getSnapshot().totalUnread, 1);
  assert.deepEqual(view.getSnapshot().rooms.map((entry) => entry.room.id), ['x']);
  view.close();
});

test('ChatRooms fetches a room again when an unread message in it is deleted, until an answer cannot predate a deletion', async () => {
  const env = fakeClock();
  const sse = sseBody();
  const answers = [];
  const server = fakeServer((path) => {
    if (path.startsWith('/api/chat/sse')) return streamResponse(sse);
    if (path === '/api/chat/rooms/r') return new Promise((resolve) => answers.push(resolve));
    return { json: { rooms: [{ ...roomR(3, 3), lastReadSeq: 0 }], totalUnread: 3, nextPageToken: null, lastEventId: '100' } };
  });
  const view = new ChatRooms({ getToken: async () => tokenFor('me'), shareAcrossTabs: false, environment: { ...env, fetch: server.fetch } });
  await view.start();
  await env.advance(0);
  const deleted = (seq) => ({ type: 'message_deleted', message: { ...message(seq).message, body: '', deletedAt: 't', deletedBy: 'x' } });
  sse.write(`retry: 1\n\nid: 101\ndata: ${JSON.stringify(deleted(2))}\n\n`);
  await env.advance(0);
  assert.equal(answers.length, 1, 'fetched');
  // Deleted while the fetch is under way, which may have read the room before.
  sse.write(`id: 102\ndata: ${JSON.stringify(deleted(3))}\n\n`);
  await env.advance(0);
  assert.equal(answers.length, 1, 'one fetch of a room at a time');
  answers[0]({ json: { ...roomR(3, 2), lastReadSeq: 0 } });
  await env.advance(0);
  assert.equal(answers.length, 2, 'fetched again');
  answers[1]({ json: { ...roomR(3, 1), lastReadSeq: 0 } });
  await env.advance(0);
  assert.equal(view.unread('r'), 1);
  assert.equal(view.getSnapshot().totalUnread, 1);
  assert.equal(view.room('r').lastMessage.deletedAt, 't', 'the last message, a tombstone');
  assert.equal(answers.length, 2);
  view.close();
});

test('a page of events is one change for listeners, not one per event', async () => {
  const env = fakeClock();
  const events = Array.from({ length: 200 }, (_, n) => ({ id: String(11 + n), data: message(n + 1) }));
  let polled = false;
  const server = fakeServer((path, init) => {
    if (path.startsWith('/api/chat/sse')) return { status: 503, json: {} };
    if (path.startsWith('/api/chat/events')) {
      if (polled) return hanging(init);
      polled = true;
      return { json: { events, lastEventId: '210', hasMore: false } };
    }
    return { json: { rooms: [roomR(0, 0)], totalUnread: 0, nextPageToken: null, lastEventId: '10' } };
  });
  const view = new ChatRooms({
    getToken: async () => tokenFor('me'), shareAcrossTabs: false, maxAttempts: 1, environment: { ...env, fetch: server.fetch },
  });
  let notices = 0;
  view.subscribe(() => (notices += 1));
  await view.start();
  await env.advance(0);
  assert.equal(view.getSnapshot().totalUnread, 200);
  assert.ok(notices <= 4, `${notices} notices for 200 events`);
  view.close();
});
