// A Node service using the package (see types.test.mjs): no DOM lib, only
// Node's types, and the package's declarations must still compile.
import {
  ChatApi, ChatError, ChatRooms, ChatStream, DEFAULTS, Presence, SendError, SseParser, Typing, TypingSender,
  UnreadCounter, backoffDelay, isNewerId, jittered, newClientId, newerVersion, retryDelay, roomAfter, seenBy,
  tokenClaims, type Attachment, type Environment, type Message, type RoomsSnapshot, type SearchPage, type Status,
  type StreamData,
} from 'chat-server-client';
import { useChatUnread } from 'chat-server-client/react';

const getToken = async () => process.env.CHAT_TOKEN ?? '';
const baseUrl = 'http://127.0.0.1:8080';

// The platform's own facilities fit `environment`: Node's timers, fetch and
// BroadcastChannel (there is no page, no Web Locks).
const environment: Partial<Environment> = {
  fetch,
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
  BroadcastChannel,
};

const stream = new ChatStream({ baseUrl, getToken, shareAcrossTabs: false, environment });
stream.addEventListener('snapshot', (event) => {
  if ('rooms' in event.detail) {
    const snapshot: RoomsSnapshot = event.detail;
    console.log(snapshot.rooms.length, snapshot.totalUnread);
  }
});
stream.addEventListener('event', (event) => {
  const data: StreamData = event.detail.data;
  if (data.type === 'message') console.log(newerVersion(null, data.message)?.body);
  if (data.type === 'room') console.log(roomAfter(null, data)?.memberIds.length ?? 'fetch it');
}, { once: false, signal: AbortSignal.timeout(60_000) });
stream.addEventListener('status', (event) => {
  const status: Status = event.detail.status;
  console.log(status, event.detail.retryIn ?? 0, stream.isLeader, stream.streamProven, stream.stats.polls);
});
stream.addEventListener('error', (event) => console.log(event.detail.error.code));
const listener = (event: Event) => console.log(event.type);
stream.addEventListener('custom', listener);
stream.removeEventListener('custom', listener);
await stream.start();
stream.close();

const api = new ChatApi({ baseUrl, getToken, fetch, sendTimeout: 5_000 });
async function post(roomId: string, body: string): Promise<Message | null> {
  try {
    return await api.send(roomId, body, { clientId: newClientId(), signal: AbortSignal.timeout(30_000) });
  } catch (error) {
    if (error instanceof SendError) return api.send(roomId, body, error.clientId);
    if (error instanceof ChatError && error.retryable) console.log(error.status, error.retryAfter);
    return null;
  }
}
const message = await post('r1', 'hello from Node');
const response: Response = await api.fetch('/api/chat/rooms', { method: 'GET', timeout: 1_000 });
console.log(message?.seq, response.status, seenBy({ bob: 3 }, message), new ChatError('x', { status: 503 }).retryable);

const rooms = new ChatRooms({ baseUrl, getToken, environment });
rooms.addEventListener('change', (event) => console.log(event.detail.roomIds));
console.log(rooms.getSnapshot().totalUnread, rooms.unread('r1'));
const presence = new Presence({ stream: rooms.stream });
presence.addEventListener('change', (event) => console.log(event.detail.userIds));
const typing = new Typing({ me: 'alice', stream: rooms.stream, environment });
typing.addEventListener('change', (event) => console.log(typing.typists(event.detail.roomId)));
new TypingSender({ api, room: () => 'r1', environment }).input();

const counter = new UnreadCounter({ me: 'alice' });
counter.applyRoom({ id: 'r1', lastMessage: null, unreadCount: 2 });
new SseParser(({ id, data }) => console.log(id, data)).push('data: {}\n\n');
console.log(
  DEFAULTS.heartbeatTimeout, backoffDelay(1), jittered(10), retryDelay(new ChatError('busy'), 0),
  isNewerId('10', '9'), tokenClaims('a.b.c').role, counter.total,
);
// The React hook's types need no DOM either (React itself is the app's).
console.log(typeof useChatUnread);

// Uploads from Node: bytes (a Buffer) or a Blob, no DOM.
async function attachReport(roomId: string): Promise<void> {
  const api = new ChatApi({ baseUrl, getToken });
  const attachment: Attachment = await api.upload(roomId, Buffer.from('a report'), { name: 'report.txt' });
  const again: Attachment = await api.upload(roomId, new Blob(['a report']), { name: 'report.txt' });
  const message: Message = await api.send(roomId, 'the reports', { attachments: [attachment.id, again.id] });
  console.log(message.attachments?.length, (await api.attachmentLinks(attachment.id)).url);
}
void attachReport;

// A search from Node: the hits' snippets as plain text, a page at a time.
async function searchAll(q: string): Promise<string[]> {
  const api = new ChatApi({ baseUrl, getToken });
  const lines: string[] = [];
  for (let cursor: string | null = null; ;) {
    const page: SearchPage = await api.search({ q, cursor, signal: AbortSignal.timeout(10_000) });
    lines.push(...page.hits.map((hit) => `${hit.roomName}: ${hit.snippet.map((part) => part.text).join('')}`));
    if (!page.next) return lines;
    cursor = page.next;
  }
}
void searchAll;
