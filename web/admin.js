// The admin panel: every room the agent may see (all pages of them) with
// exact unread badges and their total, newest activity first, and whether
// the customer has seen the last agent reply, kept live by one ChatRooms;
// shown as a support inbox: tabs for the agent's own conversations, the
// unassigned ones and all (each with its count of open ones), a status
// filter, and on the open conversation its state and what an agent does
// with it (assign, resolve, snooze, reopen);
// and the open conversation, marked read as it is read, where any message
// may be deleted, and files are sent and shown (images as thumbnails). The
// customer is a room's members; agents are the others.
// A dot says whether the customer is online, and the open conversation
// says when they type; the agent's own typing is told to the room. The
// open conversation may be deleted, after a question in place; a deleted
// room leaves every admin panel's list at once, and its open conversation
// says so.
// Above the list, the message search (SearchPanel, search.js): a hit opens
// its conversation at that message.

import {
  ChatRooms, Presence, Typing, TypingSender, seenBy,
} from '/sdk/chat-client.js';
import { showStatus, signIn, timingOverrides } from '/assets/session.js';
import { Composer, Conversation, formatDateTime } from '/assets/conversation.js';
import { SearchPanel } from '/assets/search.js';

const $ = (id) => document.getElementById(id);
const span = (className) => Object.assign(document.createElement('span'), { className });
const { user: me, getToken } = await signIn('admin');
const rooms = new ChatRooms({ getToken, ...timingOverrides() });
const { api } = rooms;
const presence = new Presence({ stream: rooms.stream });
const typing = new Typing({ me, stream: rooms.stream });
const typingSender = new TypingSender({ api, room: () => selected });
/** room id → its row in the list */
const rows = new Map();
/** The inbox's view: the tab (`mine`, `unassigned`, `all`) and the status shown. */
let tab = 'all';
let statusShown = 'open';
/** The agents, for the assignee choice: id → name (or id). */
const agents = new Map();
/** A room's conversation: one an event made knows none yet, and starts open, unassigned. */
const conversationOf = (room) => room?.conversation ?? { status: 'open', assigneeId: null };
/** Whether a room belongs to the view. */
function inView(room) {
  const { status, assigneeId } = conversationOf(room);
  if (statusShown !== 'any' && status !== statusShown) return false;
  if (tab === 'mine') return assigneeId === me;
  if (tab === 'unassigned') return !assigneeId;
  return true;
}
let selected = null;
/** Rooms deleted while this page is open: their conversation is gone. */
const deleted = new Set();
const DELETED = 'This conversation was deleted.';

/** An agent's message: its author is no member of the room (the customer is). */
const byAgent = (room, message) => !room.memberIds.includes(message.authorId);
/** Whether one of the room's members has read up to the message. */
const seenByCustomer = (room, message) => seenBy(room.readCursors, message).some((id) => room.memberIds.includes(id));

const conversation = new Conversation({
  list: $('messages'),
  api,
  me,
  empty: 'No messages in this room yet.',
  controls: () => ['delete'],
  seen: (message) => {
    const room = rooms.room(message.roomId);
    return Boolean(room?.memberIds) && byAgent(room, message) && seenByCustomer(room, message);
  },
});
const composer = new Composer({
  form: $('send'),
  room: () => selected,
  dropZone: document.querySelector('.conversation'),
  // Into the room open when the file was chosen.
  upload: (file, options, roomId) => api.upload(roomId, file, options),
  send: async (text, clientId, roomId, attachments) => {
    typingSender.stop();
    const message = await api.send(roomId, text, { clientId, attachments });
    // Read far back (a search hit), the conversation goes to its newest.
    if (roomId === conversation.roomId) conversation.sent(message);
  },
});
$('body').addEventListener('input', () => typingSender.input());
$('body').addEventListener('blur', () => typingSender.stop());

/** Whether one of the room's members (the customer) is online. */
const customerOnline = (room) => Boolean(room?.memberIds?.some((id) => presence.online(id) === true));

/** A presence dot and its words: the dot for the eye, the hidden text for screen readers. */
function showPresence(dot, online) {
  const value = String(online);
  if (dot.dataset.online === value) return;
  dot.dataset.online = value;
  dot.querySelector('.visually-hidden').textContent = online ? 'Customer online' : 'Customer offline';
}

/** The open conversation's state, and the actions that apply to it. */
function showConversation(room) {
  $('conversation-actions').hidden = !room || deleted.has(selected);
  if (!room) return;
  const { status, assigneeId, snoozedUntil } = conversationOf(room);
  const who = assigneeId ? `assigned to ${assigneeId === me ? 'you' : agents.get(assigneeId) ?? assigneeId}` : 'unassigned';
  const state = status === 'snoozed' && snoozedUntil ? `Snoozed until ${formatDateTime(snoozedUntil)}` : STATUS[status] ?? String(status);
  const text = `${state} · ${who}`;
  if ($('conversation-state').textContent !== text) $('conversation-state').textContent = text;
  // Disabled, not hidden: the button just pressed keeps the focus.
  $('assign-me').disabled = assigneeId === me;
  $('resolve').disabled = status === 'resolved';
  $('reopen').disabled = status === 'open';
  const choice = $('assignee');
  if (assigneeId && !agents.has(assigneeId)) {
    agents.set(assigneeId, assigneeId);
    loadAgents();
  }
  showAgents();
  if (document.activeElement !== choice) choice.value = assigneeId ?? '';
}

const STATUS = { open: 'Open', pending: 'Pending', resolved: 'Resolved', snoozed: 'Snoozed' };

/** The assignee choice's options: nobody, then every agent (not while it is in use). */
function showAgents() {
  const choice = $('assignee');
  if (document.activeElement === choice) return;
  const wanted = ['', ...agents.keys()];
  if ([...choice.options].map((option) => option.value).join('\n') === wanted.join('\n')) return;
  const value = choice.value;
  choice.replaceChildren(...wanted.map((id) => new Option(id === '' ? 'Nobody' : agents.get(id), id)));
  choice.value = value;
}

async function loadAgents() {
  try {
    const { agents: list } = await api.agents();
    // Added to, never emptied: an assignee the server no longer lists
    // (forgotten) keeps their id, and is not asked about again.
    for (const agent of list) agents.set(agent.id, agent.name ?? agent.id);
    showOpenRoom();
  } catch {
    // The choice keeps the agents it knew; the next look tries again.
  }
}

/** Asks the server for a change of the open conversation; its event updates the page. */
async function changeOpen(changes) {
  const roomId = selected;
  $('conversation-problem').hidden = true;
  try {
    await api.changeConversation(roomId, changes);
  } catch (error) {
    if (selected !== roomId) return;
    const why = error?.retryable === false ? error.message : 'the server could not be reached; try again';
    showProblem(`Not changed: ${why}.`);
    // The choice goes back to what stands.
    $('assignee').value = conversationOf(rooms.room(roomId)).assigneeId ?? '';
  }
}

/** Says what went wrong; emptied first, so the same words again are announced again. */
function showProblem(text) {
  const problem = $('conversation-problem');
  problem.textContent = '';
  problem.hidden = false;
  requestAnimationFrame(() => { problem.textContent = text; });
}

/** Tomorrow at 9:00, here. */
function tomorrowMorning() {
  const at = new Date();
  at.setDate(at.getDate() + 1);
  at.setHours(9, 0, 0, 0);
  return at;
}

/** The open conversation's head and typing line. */
function showOpenRoom() {
  const room = selected ? rooms.room(selected) : null;
  showConversation(room);
  // Offered to admins (the server lets no one else) for a room that is
  // listed, and not while its question is asked.
  const admin = rooms.stream.claims?.role === 'admin';
  $('delete-room').hidden = !admin || !room || deleted.has(selected) || !$('delete-room-confirm').hidden;
  const dot = $('room-presence');
  dot.hidden = !room;
  if (room) showPresence(dot, customerOnline(room));
  // The customer's typing only: other agents' is not the agent's news.
  const typists = selected ? typing.typists(selected).filter((id) => room?.memberIds?.includes(id)) : [];
  const text = typists.length > 0 ? `${typists.join(', ')} is typing…` : '';
  if ($('typing').textContent !== text) $('typing').textContent = text;
}

/** A room's row, with the parts that change. */
function roomRow(roomId) {
  const row = document.createElement('li');
  row.dataset.roomId = roomId;
  const button = document.createElement('button');
  button.type = 'button';
  const name = document.createElement('span');
  name.className = 'name';
  const receipt = document.createElement('span');
  receipt.className = 'receipt';
  const badge = document.createElement('span');
  badge.className = 'badge';
  const dot = document.createElement('span');
  dot.className = 'presence';
  dot.append(span('visually-hidden'));
  button.append(dot, name, receipt, badge);
  button.addEventListener('click', () => select(roomId));
  row.append(button);
  return { row, button, name, receipt, badge, dot };
}

/**
 * Whether the customer has seen the agents' reply when the last message is
 * one (seen or not seen); nothing when the customer spoke last, or the last
 * message is deleted: the listing holds the last message only.
 */
function showReceipt(receipt, room) {
  const last = room.lastMessage;
  const reply = last && !last.deletedAt && room.memberIds ? byAgent(room, last) : false;
  const seen = reply ? String(seenByCustomer(room, last)) : '';
  if ((receipt.dataset.seen ?? '') === seen) return;
  if (seen) receipt.dataset.seen = seen;
  else delete receipt.dataset.seen;
  receipt.textContent = seen === '' ? '' : seen === 'true' ? 'Seen' : 'Not seen';
}

function showBadge(badge, unread) {
  const text = String(unread);
  if (badge.textContent === text) return;
  badge.textContent = text;
  badge.dataset.count = text;
  badge.setAttribute('aria-label', unread === 1 ? '1 unread message' : `${unread} unread messages`);
}

/** Brings the list in line with the rooms' state, touching only what changed. */
function render() {
  const state = rooms.getSnapshot();
  const list = $('rooms');
  // Moving a row takes the focus off its button: give it back after.
  const focused = list.contains(document.activeElement) ? document.activeElement : null;
  const present = new Set();
  let previous = null;
  const counts = { mine: 0, unassigned: 0, all: 0 };
  for (const { room } of state.rooms) {
    const { status, assigneeId } = conversationOf(room);
    if (status !== 'open') continue;
    counts.all += 1;
    if (assigneeId === me) counts.mine += 1;
    if (!assigneeId) counts.unassigned += 1;
  }
  for (const [name, count] of Object.entries(counts)) {
    const shown = $(`count-${name}`);
    if (shown.textContent !== String(count)) shown.textContent = String(count);
  }
  for (const { room, unread } of state.rooms) {
    if (!inView(room)) continue;
    present.add(room.id);
    let entry = rows.get(room.id);
    if (!entry) {
      entry = roomRow(room.id);
      entry.button.setAttribute('aria-current', String(room.id === selected));
      rows.set(room.id, entry);
    }
    if (entry.name.textContent !== room.name) entry.name.textContent = room.name;
    showReceipt(entry.receipt, room);
    showBadge(entry.badge, unread);
    if (room.memberIds) presence.watch(room.memberIds);
    showPresence(entry.dot, customerOnline(room));
    const expected = previous ? previous.nextElementSibling : list.firstElementChild;
    if (entry.row !== expected) list.insertBefore(entry.row, expected);
    previous = entry.row;
  }
  for (const [id, entry] of rows) {
    if (present.has(id)) continue;
    entry.row.remove();
    rows.delete(id);
  }
  if (focused && document.activeElement !== focused && focused.isConnected) focused.focus();
  // A focused row that left the view hands the focus to the list's first.
  else if (focused && !focused.isConnected) list.querySelector('button')?.focus();
  $('total').textContent = String(state.totalUnread);
  $('total-label').setAttribute('aria-label', `${state.totalUnread} unread in all rooms`);
  $('rooms-empty').textContent = state.rooms.length === 0
    ? 'No rooms yet. New conversations appear here as they start.'
    : 'No conversations in this view.';
  $('rooms-empty').hidden = !state.ready || present.size > 0;
  if (selected && !rooms.room(selected)) $('room-title').textContent = 'This room is gone';
  // Reads move the open conversation's seen receipt.
  conversation.refresh();
  showOpenRoom();
}

let reading = null;
/** Marks the open room read, soon and once for a burst, while the page is seen. */
function markReadSoon() {
  if (!selected || document.visibilityState !== 'visible' || reading) return;
  reading = setTimeout(() => {
    reading = null;
    if (selected && rooms.unread(selected) > 0) rooms.markRead(selected).catch(() => {});
  }, 250);
}

/** The open room's deletion question: asked, or put away. */
function askToDelete(asking) {
  $('delete-room-confirm').hidden = !asking;
  $('confirm-delete-room').disabled = false;
  showOpenRoom();
  if (asking) $('confirm-delete-room').focus();
}

async function deleteOpenRoom() {
  const roomId = selected;
  $('confirm-delete-room').disabled = true;
  $('delete-room-problem').hidden = true;
  try {
    await api.deleteRoom(roomId);
    // Its event follows, and takes it off the list; here it is gone already.
    roomDeleted(roomId);
  } catch (error) {
    if (selected !== roomId || deleted.has(roomId)) return;
    const why = error?.retryable === false ? error.message : 'the server could not be reached; try again';
    $('delete-room-problem').textContent = `Not deleted: ${why}.`;
    $('delete-room-problem').hidden = false;
    askToDelete(false);
    $('delete-room').focus();
  }
}

/** A room is deleted: if it is the open one, its conversation says so and takes no more. */
function roomDeleted(roomId) {
  if (deleted.has(roomId)) return;
  deleted.add(roomId);
  if (roomId !== selected) return;
  $('delete-room-confirm').hidden = true;
  $('delete-room-problem').hidden = true;
  conversation.gone(DELETED);
  composer.disable();
  showOpenRoom();
}

/** Opens a room: at its newest messages, or `around` a seq (a search hit, `name` its room's). */
async function select(roomId, around = null, name = '') {
  if (selected !== roomId) {
    composer.switched();
    typingSender.stop();
    $('delete-room-confirm').hidden = true;
    $('delete-room-problem').hidden = true;
  }
  selected = roomId;
  $('conversation-problem').hidden = true;
  for (const [id, entry] of rows) entry.button.setAttribute('aria-current', String(id === roomId));
  $('room-title').textContent = rooms.room(roomId)?.name ?? name;
  showOpenRoom();
  composer.enable();
  await (around === null ? conversation.open(roomId) : conversation.openAround(roomId, around));
  if (selected === roomId) rooms.markRead(roomId).catch(() => {});
}

// The search's results take the room list's place; a hit opens its
// conversation at the message, and an ended search takes the found mark off.
new SearchPanel({
  form: $('search'),
  results: $('search-results'),
  list: $('room-list'),
  api,
  roomName: (roomId) => rooms.room(roomId)?.name,
  open: select,
  cleared: () => conversation.unmarkFound(),
});

$('delete-room').addEventListener('click', () => askToDelete(true));
$('keep-room').addEventListener('click', () => {
  askToDelete(false);
  $('delete-room').focus();
});
$('confirm-delete-room').addEventListener('click', deleteOpenRoom);
for (const button of document.querySelectorAll('.inbox-tabs button')) {
  button.addEventListener('click', () => {
    tab = button.dataset.tab;
    for (const other of document.querySelectorAll('.inbox-tabs button')) {
      other.setAttribute('aria-pressed', String(other === button));
    }
    render();
  });
}
$('status-filter').addEventListener('change', () => {
  statusShown = $('status-filter').value;
  render();
});
$('assign-me').addEventListener('click', () => changeOpen({ assigneeId: me }));
$('assignee').addEventListener('blur', showAgents);
$('assignee').addEventListener('change', () => changeOpen({ assigneeId: $('assignee').value || null }));
$('resolve').addEventListener('click', () => changeOpen({ status: 'resolved' }));
$('reopen').addEventListener('click', () => changeOpen({ status: 'open' }));
$('snooze-hour').addEventListener('click', () => changeOpen({ status: 'snoozed', snoozedUntil: new Date(Date.now() + 3_600_000) }));
$('snooze-tomorrow').addEventListener('click', () => changeOpen({ status: 'snoozed', snoozedUntil: tomorrowMorning() }));
$('snooze').addEventListener('click', () => {
  const until = $('snooze-until').value;
  if (!until) {
    showProblem('Not changed: choose when the conversation comes back.');
    return;
  }
  // A datetime-local value is the page's local time.
  changeOpen({ status: 'snoozed', snoozedUntil: new Date(until) });
});

rooms.subscribe(render);
presence.addEventListener('change', render);
typing.addEventListener('change', ({ detail }) => detail.roomId === selected && showOpenRoom());
rooms.stream.addEventListener('status', (event) => showStatus($('status'), event.detail));
rooms.stream.addEventListener('event', ({ detail: { data } }) => {
  if (data.type === 'room' && data.change === 'deleted') roomDeleted(data.room.id);
  if (data.type === 'message_edited' || data.type === 'message_deleted') conversation.change(data.message);
  if (data.type !== 'message') return;
  if (data.message.authorId === me) composer.arrived(data.message);
  if (data.message.roomId !== selected) return;
  conversation.add(data.message);
  markReadSoon();
});
// After a reset the open conversation is loaded again, like the list; an
// admin sees every room, so one the new list lacks was deleted meanwhile.
rooms.stream.addEventListener('snapshot', () => {
  if (!selected || deleted.has(selected)) return;
  if (rooms.room(selected)) conversation.reload();
  else roomDeleted(selected);
});
rooms.stream.addEventListener('error', ({ detail: { error } }) => {
  showStatus($('status'), { status: 'offline' });
  $('rooms-empty').textContent = `The rooms cannot be shown: ${error.message}.`;
  $('rooms-empty').hidden = false;
});
document.addEventListener('visibilitychange', markReadSoon);
window.addEventListener('pagehide', () => {
  typingSender.stop();
  typing.close();
  presence.close();
  rooms.close();
});
// For tests and curious operators.
window.chatRooms = rooms;
window.chatStream = rooms.stream;
loadAgents();
await rooms.start();
