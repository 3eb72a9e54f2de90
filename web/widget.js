// The chat widget: one room as its end user sees it, live.

import { ChatApi, ChatStream } from '/sdk/chat-client.js';
import { showInOrder, showStatus, signIn, timingOverrides } from '/assets/session.js';

const $ = (id) => document.getElementById(id);
const { user: me, getToken } = await signIn('user');
const api = new ChatApi({ getToken });

// The user's conversation: their newest room, or a new one.
const params = new URLSearchParams(location.search);
let roomId = params.get('roomId');
if (!roomId) {
  const { rooms } = await api.rooms();
  roomId = rooms[0]?.id ?? (await api.createRoom(`Support for ${me}`)).id;
}

const shown = new Set();
const show = (message) => showInOrder($('messages'), message, me, shown);

const stream = new ChatStream({ getToken, roomId, ...timingOverrides() });
stream.addEventListener('status', (event) => showStatus($('status'), event.detail.status));
stream.addEventListener('snapshot', (event) => event.detail.messages?.forEach(show));
stream.addEventListener('event', (event) => {
  const { data } = event.detail;
  if (data.type === 'message') show(data.message);
});
window.addEventListener('pagehide', () => stream.close());

$('send').addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = $('body').value;
  if (!body.trim()) return;
  $('body').value = '';
  await api.send(roomId, body);
});
$('body').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault();
    $('send').requestSubmit();
  }
});
await stream.start();
for (const control of [$('body'), $('send').querySelector('button')]) control.disabled = false;
window.chatStream = stream;
window.chatRoomId = roomId;
