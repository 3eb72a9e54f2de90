// An app as the README writes it, checked by tsc (see types.test.mjs).
import {
  ChatApi, ChatError, ChatRooms, ChatStream, Presence, SendError, Typing, TypingSender, UnreadCounter, newClientId,
  newerVersion, roomAfter, seenBy, type Agent, type DeletedRoom, type InboxSummary, type Message, type SignalData,
  type Room, type RoomChange, type Status, type StreamData, type Attachment, type AttachmentLinks, type Thumbnail,
  type UploadOptions, type SearchHit, type SearchPage, type SearchParams, type SnippetPart,
} from 'chat-server-client';
import { useChatUnread } from 'chat-server-client/react';

const getToken = async ({ forceRefresh }: { forceRefresh: boolean }) => (forceRefresh ? 'fresh' : 'cached');

const stream = new ChatStream({ baseUrl: 'https://chat.example.com', getToken, roomId: 'r1', pollWait: 10 });
stream.addEventListener('event', (event) => {
  const data: StreamData = event.detail.data;
  if (data.type === 'message') {
    const seq: number = data.message.seq;
    console.log(seq, event.detail.id.length);
  }
  if (data.type === 'message_edited' || data.type === 'message_deleted') {
    const shown: Message | null = newerVersion(null, data.message);
    const tombstone: boolean = data.message.deletedAt !== undefined;
    console.log(shown?.editedAt ?? '', tombstone, data.message.deletedBy ?? '');
  }
  if (data.type === 'room' && data.change === 'deleted') {
    const change: RoomChange = data.change;
    console.log(change, data.room.id, data.room.lastMessage === null, roomAfter(null, data) === null);
  } else if (data.type === 'room' && data.change !== 'created') {
    const known: Room | null = rooms.room(data.room.id);
    console.log(data.userId, roomAfter(known, data)?.memberIds ?? 'fetch the room');
  }
});
stream.addEventListener('status', (event) => {
  const status: Status = event.detail.status;
  console.log(status, event.detail.retryIn ?? 0);
});
stream.addEventListener('error', (event) => console.log(event.detail.error.status));
void stream.start();

const api = new ChatApi({ getToken });
async function send(body: string): Promise<Message | null> {
  const clientId = newClientId();
  try {
    return await api.send('r1', body, { clientId, onRetry: ({ attempt }) => console.log(attempt) });
  } catch (error) {
    if (error instanceof SendError && error.retryable) return api.send('r1', body, { clientId: error.clientId });
    if (error instanceof ChatError) console.log(error.code, error.outcome);
    return null;
  }
}
void send('hi');

async function change(message: Message): Promise<void> {
  const edited: Message = await api.editMessage(message.roomId, message.id, 'hello');
  const tombstone: Message = await api.deleteMessage(edited.roomId, edited.id);
  const room: Room = await api.room(tombstone.roomId);
  const readers: string[] = seenBy(room.readCursors, message);
  console.log(readers.length > 0 ? 'Seen' : '', room.lastReadSeq ?? 0);
}
void change;

async function deleteRoom(roomId: string): Promise<string> {
  const deleted: DeletedRoom = await api.deleteRoom(roomId);
  return `${deleted.roomId} deleted by ${deleted.deletedBy} at ${deleted.deletedAt}`;
}
void deleteRoom;

// The support inbox, as an agent's page uses it.
async function takeNextUnassigned(me: string): Promise<string | null> {
  const { rooms: waiting } = await api.rooms({ status: 'open', assignee: 'none', limit: 1 });
  const next = waiting[0];
  if (!next) return null;
  const taken: Room = await api.assign(next.id, me);
  const counts: InboxSummary = await api.inbox();
  const { agents }: { agents: Agent[] } = await api.agents();
  const online = agents.filter((agent) => agent.online).map((agent) => agent.name ?? agent.id);
  console.log(counts.mine.open, counts.unassigned.unread, online, taken.conversation?.waitingSince);
  await api.changeConversation(next.id, { status: 'snoozed', snoozedUntil: new Date(Date.now() + 3_600_000) });
  return taken.conversation?.assigneeId ?? null;
}
void takeNextUnassigned;

const rooms = new ChatRooms({ getToken });
const unsubscribe = rooms.subscribe(() => {
  const { totalUnread, rooms: list } = rooms.getSnapshot();
  console.log(totalUnread, list.map(({ room, unread }) => `${room.name}: ${unread}`));
});
unsubscribe();

const counter = new UnreadCounter({ me: 'alice' });
counter.applyRoom({ id: 'r1', lastMessage: null, unreadCount: 0 });
counter.applyRoom({ id: 'r1', lastMessage: null, unreadCount: 0, lastReadSeq: 0 }, counter.asOf('r1'));
const total: number = counter.total;
console.log(total);

export function Badge(): string {
  const { status, totalUnread } = useChatUnread({ getToken, user: 'alice' });
  return `${status}: ${totalUnread}`;
}

const live = new ChatStream({ getToken, roomId: 'r1', signals: true });
live.addEventListener('signal', (event) => {
  const data: SignalData = event.detail.data;
  if (data.type === 'typing') console.log(data.roomId, data.userId, data.typing, data.expiresInMs);
  else console.log(data.userId, data.online, data.version);
});
const presence = new Presence({ stream: live });
void presence.watch(['alice']);
presence.addEventListener('change', (event) => console.log(event.detail.userIds.map((id) => presence.online(id))));
const typists = new Typing({ me: 'bob', stream: live });
typists.addEventListener('change', (event) => console.log(typists.typists(event.detail.roomId).join(', ')));
const sender = new TypingSender({ api: live.api, room: () => 'r1' });
sender.input();
sender.stop();
void live.api.typing('r1', false);
void live.api.presence(['alice']).then(({ version, users }) => console.log(version, users[0]?.online));

// Attachments: a File from an input or a paste, uploaded with progress and a
// way to cancel, sent with a message, shown by its signed links.
async function attach(roomId: string, file: File, cancel: AbortController): Promise<Message | null> {
  try {
    const attachment: Attachment = await api.upload(roomId, file, {
      name: file.name,
      signal: cancel.signal,
      onProgress: ({ loaded, total }) => console.log(loaded / total),
    });
    const thumbnail: Thumbnail | undefined = attachment.thumbnail;
    console.log(attachment.contentType, attachment.size, attachment.width ?? 0, thumbnail?.height ?? 0);
    const message: Message = await api.send(roomId, '', { attachments: [attachment.id] });
    for (const sent of message.attachments ?? []) {
      const links: AttachmentLinks = await api.attachmentLinks(sent.id);
      console.log(links.url, links.thumbnailUrl ?? '', links.expiresAt);
    }
    return message;
  } catch (error) {
    if (error instanceof ChatError && error.code === 'attachment_too_large') console.log(error.status);
    return null;
  }
}
void attach;
const uploadOptions: UploadOptions = {};
console.log(uploadOptions);

// Search as the user types: the one before cancelled, the snippet's parts as text.
async function find(q: string, typedOver: AbortController, cursor: string | null = null): Promise<string | null> {
  const page: SearchPage = await api.search({ q, cursor, limit: 20, sort: 'newest', since: new Date(0), signal: typedOver.signal });
  for (const hit of page.hits) {
    const parts: SnippetPart[] = hit.snippet;
    console.log(hit.roomName, hit.message.seq, parts.map((part) => (part.match ? `[${part.text}]` : part.text)).join(''));
  }
  const around = await api.messages('r1', { around: page.hits[0]?.message.seq ?? 1, limit: 50 });
  const newer: boolean = around.hasNewer ?? false;
  console.log(newer, around.hasMore);
  return page.next;
}
void find;
const searchParams: SearchParams = { q: 'refund', roomId: 'r1', authorId: 'alice', until: '2026-01-01T00:00:00Z' };
const hit: SearchHit | undefined = undefined;
console.log(searchParams, hit);
