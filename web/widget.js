// The chat widget: the end user's conversation, live. It reuses the user's
// newest room, and creates one only when they first send a message, so
// signing in never leaves an empty room behind. The user may edit or delete
// their last message, and sees "Seen" under their newest message someone
// else (an agent) has read. The user may send files (attached, pasted or
// dropped), shown as thumbnails or chips. It says "Agent is typing…" while someone else
// types in the room, and tells the room when the user types. A room an
// agent deletes says so in place of its messages, and takes no more.

import {
  ChatApi, ChatStream, Typing, TypingSender, retryDelay, seenBy,
} from '/sdk/chat-client.js';
import { showStatus, signIn, timingOverrides } from '/assets/session.js';
import { Composer, Conversation } from '/assets/conversation.js';

const $ = (id) => document.getElementById(id);
const { user: me, getToken } = await signIn('user');
const timings = timingOverrides();
const api = new ChatApi({ getToken, ...timings });
let roomId = new URLSearchParams(location.search).get('roomId');
let stream = null;
let typing = null;
/** A room that does not exist yet is told nothing: `room()` is null until it does. */
const typingSender = new TypingSender({ api, room: () => roomId });
/** How far each reader of the room has read: the room's, then its `read` events and posts. */
let readCursors = {};

const conversation = new Conversation({
  list: $('messages'),
  api,
  me,
  empty: 'No messages yet. Say hello: we are here to help.',
  controls: (message, lastOwn) => (lastOwn ? ['edit', 'delete'] : []),
  seen: (message) => message.authorId === me && seenBy(readCursors, message).length > 0,
});
/** The user's room, made (once, however many ask at a time) when they first send or attach. */
let making = null;
function ensureRoom() {
  if (roomId) return Promise.resolve(roomId);
  making ??= (async () => {
    try {
      await openRoom(await findOrCreateRoom());
      return roomId;
    } finally {
      making = null;
    }
  })();
  return making;
}

const composer = new Composer({
  form: $('send'),
  room: () => roomId,
  dropZone: document.querySelector('.widget'),
  upload: async (file, options) => api.upload(await ensureRoom(), file, options),
  send: async (text, clientId, room, attachments) => {
    typingSender.stop();
    if (!room) room = await ensureRoom();
    conversation.add(await api.send(room, text, { clientId, attachments }));
  },
});

$('body').addEventListener('input', () => typingSender.input());
$('body').addEventListener('blur', () => typingSender.stop());

/** The typing line: anyone but the user typing in the room is an agent. */
function showTyping() {
  const text = roomId && typing?.typists(roomId).length > 0 ? 'Agent is typing…' : '';
  if ($('typing').textContent !== text) $('typing').textContent = text;
}

/** Tries `work` until it succeeds, showing each wait in the status pill. */
async function persist(work) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const result = await work();
      if (attempt > 0) showStatus($('status'), { status: 'connecting' });
      return result;
    } catch (error) {
      if (error.retryable === false) throw error;
      const retryIn = retryDelay(error, attempt, api.options);
      showStatus($('status'), { status: 'connecting', retryIn });
      await new Promise((resolve) => setTimeout(resolve, retryIn));
    }
  }
}

/** The user's newest room; a new one only if they have none (looked up again, in case). */
async function findOrCreateRoom() {
  const { rooms } = await api.rooms({ limit: 1 });
  return rooms[0]?.id ?? (await api.createRoom(`Support for ${me}`)).id;
}

let reading = null;
function markReadSoon() {
  if (!roomId || document.visibilityState !== 'visible' || reading) return;
  reading = setTimeout(() => {
    reading = null;
    api.markRead(roomId, conversation.lastSeq).catch(() => {});
  }, 250);
}

/** A reader's cursor moved (they never move back). */
function readTo(userId, seq) {
  if ((readCursors[userId] ?? 0) >= seq) return;
  readCursors = { ...readCursors, [userId]: seq };
  conversation.refresh();
}

/**
 * The room's cursors, at each snapshot, tried until they come (quietly: the
 * conversation works without them). Events before or after the answer
 * agree with it: each cursor is taken at its furthest.
 */
async function loadCursors(id) {
  for (let attempt = 0; id === roomId; attempt += 1) {
    try {
      const room = await api.room(id);
      for (const [userId, seq] of Object.entries(room.readCursors ?? {})) readTo(userId, seq);
      return;
    } catch (error) {
      if (error.retryable === false) return;
      await new Promise((resolve) => setTimeout(resolve, retryDelay(error, attempt, api.options)));
    }
  }
}

let over = false;
/** The conversation cannot go on: says why (in place of its messages if they are `gone`). */
function ended(text, { gone = false } = {}) {
  if (over) return;
  over = true;
  showStatus($('status'), { status: 'offline' });
  if (gone) conversation.gone(text);
  else conversation.end(text);
  composer.disable();
  typing?.close();
  $('typing').textContent = '';
}

const DELETED = 'This conversation was deleted.';

async function openRoom(id) {
  roomId = id;
  window.chatRoomId = id;
  stream = new ChatStream({ getToken, roomId: id, signals: true, ...timings });
  window.chatStream = stream;
  typing = new Typing({ me, stream });
  typing.addEventListener('change', showTyping);
  stream.addEventListener('status', (event) => showStatus($('status'), event.detail));
  stream.addEventListener('snapshot', (event) => {
    conversation.open(id, event.detail).then(markReadSoon);
    loadCursors(id);
  });
  stream.addEventListener('event', ({ detail: { data } }) => {
    // Its last event: the view stops after it (an error, room_deleted).
    if (data.type === 'room' && data.change === 'deleted') ended(DELETED, { gone: true });
    if (data.type === 'read') readTo(data.userId, data.lastReadSeq);
    if (data.type === 'message_edited' || data.type === 'message_deleted') conversation.change(data.message);
    if (data.type !== 'message') return;
    conversation.add(data.message);
    // Posting reads the room.
    readTo(data.message.authorId, data.message.seq);
    if (data.message.authorId === me) composer.arrived(data.message);
    else markReadSoon();
  });
  stream.addEventListener('error', ({ detail: { error } }) => {
    if (error.code === 'room_deleted') ended(DELETED, { gone: true });
    // Gone before this page saw why (deleted, or the user taken out of it).
    else if (error.status === 404) ended('This conversation is no longer available.', { gone: true });
    else ended('This conversation has ended.');
  });
  window.addEventListener('pagehide', () => {
    typingSender.stop();
    typing.close();
    stream.close();
  });
  await stream.start();
}

try {
  if (!roomId) roomId = (await persist(() => api.rooms({ limit: 1 }))).rooms[0]?.id ?? null;
  if (roomId) {
    await openRoom(roomId);
  } else {
    await conversation.open(null, { messages: [], hasMore: false });
    showStatus($('status'), { status: 'live' });
  }
  document.addEventListener('visibilitychange', markReadSoon);
  if (!over) {
    composer.enable();
    composer.focus();
  }
  window.chatRoomId = roomId;
} catch (error) {
  ended(`The conversation cannot be shown: ${error.message}.`);
}
