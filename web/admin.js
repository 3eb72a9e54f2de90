// The admin panel: every room with its unread badge, newest activity first,
// kept live by one ChatStream; the selected room's conversation. Each event
// touches only the rows it concerns, so thousands of rooms stay cheap.

import { ChatApi, ChatStream } from '/sdk/chat-client.js';
import { showInOrder, showStatus, signIn, timingOverrides } from '/assets/session.js';

const $ = (id) => document.getElementById(id);
const { user: me, getToken } = await signIn('admin');
const api = new ChatApi({ getToken });

/** id → { room, unread, lastSeq, row } */
const rooms = new Map();
let selected = null;
let nextPageToken = null;
const shown = new Set(); // message ids in the open conversation

function updateTotal() {
  let total = 0;
  for (const entry of rooms.values()) total += entry.unread;
  $('total').textContent = String(total);
}

function setUnread(entry, unread) {
  entry.unread = Math.max(0, unread);
  const badge = entry.row.querySelector('.badge');
  badge.textContent = String(entry.unread);
  badge.dataset.count = String(entry.unread);
  updateTotal();
}

function roomRow(room) {
  const row = document.createElement('li');
  row.dataset.roomId = room.id;
  const button = document.createElement('button');
  button.type = 'button';
  const name = document.createElement('span');
  name.className = 'name';
  const badge = document.createElement('span');
  badge.className = 'badge';
  badge.setAttribute('aria-label', 'unread');
  button.append(name, badge);
  button.addEventListener('click', () => select(room.id));
  row.append(button);
  return row;
}

/** Adds or refreshes a room; `toTop` moves it to the head of the list. */
function upsert(room, { unread, toTop, append = false }) {
  let entry = rooms.get(room.id);
  if (!entry) {
    entry = { room, unread: 0, lastSeq: 0, row: roomRow(room) };
    rooms.set(room.id, entry);
    if (append) $('rooms').append(entry.row);
    else $('rooms').prepend(entry.row);
  } else if (toTop && $('rooms').firstElementChild !== entry.row) {
    $('rooms').prepend(entry.row);
  }
  entry.room = room;
  entry.lastSeq = Math.max(entry.lastSeq, room.lastMessage?.seq ?? 0);
  entry.row.querySelector('.name').textContent = room.name;
  if (unread !== undefined) setUnread(entry, unread);
  return entry;
}

function applySnapshot(snapshot) {
  const seen = new Set();
  for (const room of snapshot.rooms) {
    seen.add(room.id);
    const entry = upsert(room, { unread: room.unreadCount, append: true });
    $('rooms').append(entry.row); // keep the snapshot's order
  }
  nextPageToken = snapshot.nextPageToken;
  $('more').hidden = !nextPageToken;
  updateTotal();
}

function onMessage(message) {
  const entry = rooms.get(message.roomId);
  if (!entry) return; // a room event introduces every room first
  entry.lastSeq = Math.max(entry.lastSeq, message.seq);
  entry.room = { ...entry.room, lastMessage: message };
  upsert(entry.room, { toTop: true });
  // Posting moves the author's cursor; others' messages are unread for me.
  setUnread(entry, message.authorId === me ? 0 : entry.unread + 1);
  if (selected === message.roomId) showMessage(message);
}

function onStreamEvent({ data }) {
  if (data.type === 'message') onMessage(data.message);
  else if (data.type === 'room') upsert(data.room, { toTop: true, unread: rooms.get(data.room.id)?.unread ?? (data.room.lastMessage?.seq ?? 0) });
  else if (data.type === 'read' && data.userId === me) {
    const entry = rooms.get(data.roomId);
    if (entry) setUnread(entry, entry.lastSeq - data.lastReadSeq);
  }
}

function showMessage(message) {
  showInOrder($('messages'), message, me, shown);
}

async function select(roomId) {
  selected = roomId;
  shown.clear();
  $('messages').replaceChildren();
  for (const entry of rooms.values()) {
    entry.row.querySelector('button').setAttribute('aria-current', String(entry.room.id === roomId));
  }
  $('room-title').textContent = rooms.get(roomId)?.room.name ?? '';
  for (const control of [$('mark-read'), $('body'), $('send').querySelector('button')]) control.disabled = false;
  const page = await api.messages(roomId, '?limit=100');
  if (selected !== roomId) return;
  for (const message of page.messages) showMessage(message);
}

$('send').addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = $('body').value;
  if (!selected || !body.trim()) return;
  $('body').value = '';
  await api.send(selected, body);
});
$('body').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault();
    $('send').requestSubmit();
  }
});
$('mark-read').addEventListener('click', async () => {
  const entry = rooms.get(selected);
  if (!entry) return;
  const state = await api.markRead(selected, entry.lastSeq);
  setUnread(entry, state.unreadCount);
});
$('more').addEventListener('click', async () => {
  if (!nextPageToken) return;
  const page = await api.request('GET', `/api/chat/rooms?pageToken=${encodeURIComponent(nextPageToken)}`);
  for (const room of page.rooms) upsert(room, { unread: room.unreadCount, append: true });
  nextPageToken = page.nextPageToken;
  $('more').hidden = !nextPageToken;
});

const stream = new ChatStream({ getToken, ...timingOverrides() });
stream.addEventListener('status', (event) => showStatus($('status'), event.detail.status));
stream.addEventListener('snapshot', (event) => applySnapshot(event.detail));
stream.addEventListener('event', (event) => onStreamEvent(event.detail));
window.addEventListener('pagehide', () => stream.close());
await stream.start();
// For tests and curious operators.
window.chatStream = stream;
