// Types of chat-server-client (chat-client.js and its modules in src/),
// written by hand and kept true by tsc: test/types.test.mjs checks the code
// against them (`checkJs`: src/ uses them in JSDoc, and the entry's exports
// must fit them), and checks them in a browser project (DOM) and in a
// Node-only one (no DOM lib). So they name no DOM-only type: what the client
// needs of a page (its document, window, locks and channel) is written out
// below, and a browser's own objects fit it.

export type Status = 'connecting' | 'live' | 'reconnecting' | 'polling' | 'paused' | 'offline';

export interface Message {
  id: string;
  roomId: string;
  seq: number;
  authorId: string;
  body: string;
  clientId: string | null;
  createdAt: string;
  /** When the body was last replaced, if ever. */
  editedAt?: string;
  /** A deleted message is a tombstone: `body` is '', and these say when and by whom. */
  deletedAt?: string;
  deletedBy?: string;
  /** The files sent with it, in the order given; absent when none, and once it is deleted. */
  attachments?: Attachment[];
}

/** An image attachment's thumbnail (a PNG, at most 320 pixels a side). */
export interface Thumbnail {
  width: number;
  height: number;
}

/**
 * A file uploaded into a room (`ChatApi.upload`), as a message carries it.
 * Its bytes are at `GET /api/chat/attachments/{id}` (with the token), or at
 * the signed links of `ChatApi.attachmentLinks`.
 */
export interface Attachment {
  id: string;
  /** The uploader's file name, cleaned. */
  name: string;
  /** In bytes. */
  size: number;
  /** Sniffed from the bytes by the server. */
  contentType: string;
  /** A raster image's size in pixels (png, jpeg, gif, webp). */
  width?: number;
  height?: number;
  /** An image's thumbnail, if it has one. */
  thumbnail?: Thumbnail;
}

/** `ChatApi.attachmentLinks`: links that need no token, absolute. */
export interface AttachmentLinks {
  /** The file (images open inline, anything else downloads). */
  url: string;
  /** Its thumbnail's, for images only. */
  thumbnailUrl?: string;
  /** When the links stop working, in Unix seconds. */
  expiresAt: number;
}

/** What `ChatApi.upload` sends: a Blob or File, or bytes (an ArrayBuffer, a Uint8Array or Buffer). */
export type UploadBody = Blob | ArrayBuffer | Uint8Array;

export interface UploadOptions {
  /** The file's name; a File's own by default. */
  name?: string;
  /** As the bytes leave (in a browser; elsewhere at the start and the end). */
  onProgress?(progress: { loaded: number; total: number }): void;
  /** Cancels the upload: it rejects with the signal's reason (an `AbortError`). */
  signal?: AbortSignal;
}

export interface Room {
  id: string;
  name: string;
  memberIds: string[];
  createdAt: string;
  updatedAt: string;
  lastMessage: Message | null;
  /** Absent in stream events, which many viewers share. */
  unreadCount?: number;
  /** The caller's read cursor (the count leaves out deleted messages past it). Absent in stream events. */
  lastReadSeq?: number;
  /** Every reader's cursor, by user id: for seen receipts (see `seenBy`); `read` events keep it current. Absent in stream events. */
  readCursors?: Record<string, number>;
  /** The room as a support conversation: for agents (admins) only, never in stream events. */
  conversation?: Conversation;
}

/** Where a support conversation stands: `pending` waits on the customer. */
export type ConversationStatus = 'open' | 'pending' | 'resolved' | 'snoozed';

/** A room as a support conversation, as agents see it. */
export interface Conversation {
  status: ConversationStatus;
  /** While `snoozed`: when it opens again by itself. */
  snoozedUntil: string | null;
  /** While `resolved`: since when. */
  resolvedAt: string | null;
  /** The agent working on it. */
  assigneeId: string | null;
  /** When they got it. */
  assignedAt: string | null;
  /** When this conversation began: the room's creation, or when it last left `resolved`. */
  startedAt: string;
  /** The first agent message after a customer's, in this conversation. */
  firstResponseAt: string | null;
  lastCustomerMessageAt: string | null;
  /** The oldest customer message no agent has answered yet. */
  waitingSince: string | null;
}

/** What `changeConversation` changes; what is left out stays. */
export interface ConversationChanges {
  status?: ConversationStatus;
  /** With `snoozed` only, in the future. */
  snoozedUntil?: Date | string;
  /** `'me'`, an agent's id, or `null` to unassign. */
  assigneeId?: string | null;
}

/** An inbox view of the rooms listing (agents only). */
export interface InboxFilter {
  status?: ConversationStatus;
  /** `me`, `none`, or an agent's id. */
  assignee?: string;
}

export interface Agent {
  id: string;
  /** Their token's `name` claim. */
  name: string | null;
  online: boolean;
  /** Open conversations assigned to them. */
  openConversations: number;
}

export interface InboxTab {
  /** Open conversations. */
  open: number;
  /** Messages in them the caller has not read. */
  unread: number;
}

export interface InboxSummary {
  mine: InboxTab;
  unassigned: InboxTab;
  all: InboxTab;
}

/**
 * An event of the log. A `message` also moves its author's read cursor to
 * its `seq` (posting reads the room), as a `read` event would. A message
 * comes in its latest version, replays included: a `message` event may
 * already carry `editedAt` or `deletedAt`.
 */
export type StreamData =
  | { type: 'message'; message: Message }
  /** The same id and seq, a new body. */
  | { type: 'message_edited'; message: Message }
  /** The message as a tombstone. */
  | { type: 'message_deleted'; message: Message }
  | { type: 'read'; roomId: string; userId: string; lastReadSeq: number }
  /**
   * A conversation's new state (agents' global streams only): set by an
   * agent, opened again by the customer's message, or by its snooze
   * running out (`changedBy: 'chat-server:snooze'`).
   */
  | {
      type: 'conversation_updated';
      roomId: string;
      conversation: Conversation;
      /** What this event changed. */
      change: 'status' | 'assignee';
      changedBy: string;
    }
  | { type: 'room'; room: Room; change: 'created' }
  /** A membership change names the member; the room comes without `memberIds` (see `roomAfter`). */
  | { type: 'room'; room: Omit<Room, 'memberIds'>; change: 'member_added' | 'member_removed'; userId: string }
  /**
   * An admin deleted the room, its messages and events: the room's last
   * event, and the only one of it the log keeps. Drop the room; a room's
   * stream ends after it, and the room answers 404 from then on.
   */
  | { type: 'room'; room: Omit<Room, 'memberIds' | 'lastMessage'> & { lastMessage: null }; change: 'deleted' };

/** What a `room` event says happened to the room. */
export type RoomChange = Extract<StreamData, { type: 'room' }>['change'];

/** `DELETE /api/chat/rooms/{roomId}`: what is left of a deleted room. */
export interface DeletedRoom {
  roomId: string;
  deletedAt: string;
  /** The admin who deleted it. */
  deletedBy: string;
}

/** Signals: not in the log, no id, never replayed, never polled. */
export interface TypingSignal {
  type: 'typing';
  roomId: string;
  userId: string;
  /** false: stopped now. */
  typing: boolean;
  /** Forget it after this unless renewed. */
  expiresInMs: number;
}

export interface PresenceSignal {
  type: 'presence';
  userId: string;
  online: boolean;
  /** Per user, the highest version is the truth. */
  version: number;
}

export type SignalData = TypingSignal | PresenceSignal;

/** `GET /api/chat/presence`: its `version` counts for every user listed. */
export interface PresenceSnapshot {
  version: number;
  users: { userId: string; online: boolean }[];
}

export interface ResetData {
  type: 'reset';
  reason: 'unknown_event_id' | 'event_id_expired';
}

export interface RoomsSnapshot {
  rooms: Room[];
  /** Absent from an inbox view (filtered by status or assignee). */
  totalUnread?: number;
  nextPageToken: string | null;
  lastEventId: string;
}

export interface MessagesSnapshot {
  messages: Message[];
  /** Older messages exist before this page (newer ones, for an `after` page). */
  hasMore: boolean;
  /** For an `around` page only: newer messages exist after it (load them `after` its last seq). */
  hasNewer?: boolean;
  lastEventId: string;
}

/** `ChatApi.messages`' query: one of `before`, `after`, `around` (a seq), or none for the newest page. */
export interface MessagesQuery {
  before?: number;
  after?: number;
  /** A page centred on this seq (the message included if it exists). */
  around?: number;
  /** 1 to 200; 50 by default. */
  limit?: number;
}

/** A part of a search hit's snippet: plain text, to show as text (never as HTML); `match` marks matching words. */
export interface SnippetPart {
  text: string;
  match: boolean;
}

/** A message that matches a search, with its room's name and a snippet. */
export interface SearchHit {
  message: Message;
  roomName: string;
  snippet: SnippetPart[];
}

/** `ChatApi.search`: a page of hits; `next` (as `cursor`) pages on, null on the last. */
export interface SearchPage {
  hits: SearchHit[];
  next: string | null;
}

export type SearchSort = 'newest' | 'relevance';

export interface SearchParams {
  /**
   * What a person typed, 1 to 200 characters: words (all of them), `"a
   * phrase"`, `-word` (not), `or`; the last word, unless a space follows it,
   * also as a prefix.
   */
  q: string;
  /** One room. */
  roomId?: string;
  /** One author. */
  authorId?: string;
  /** Messages created at or after this. */
  since?: Date | string;
  /** Messages created before this. */
  until?: Date | string;
  /** `newest` (the default) or `relevance`. */
  sort?: SearchSort;
  /** 1 to 50; 20 by default. */
  limit?: number;
  /** The previous page's `next`, the other parameters the same. */
  cursor?: string | null;
  /** Cancels the search: it rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** `GET /api/chat/events`. */
export interface EventPage {
  events: Array<{ id: string; data: StreamData | ResetData }>;
  lastEventId: string;
  hasMore: boolean;
}

export interface Timings {
  /** Silence on a live stream (no event, no heartbeat) that means it is dead. Default 60 000 ms. */
  heartbeatTimeout: number;
  /** For a stream's first bytes (none by then: it is held on the way, and the client long-polls at once), and for any request's answer. Default 10 000 ms. */
  connectTimeout: number;
  /** First retry delay ceiling; doubles per failure, with full jitter. Default 1 000 ms. */
  backoffInitial: number;
  /** Default 5 000 ms. */
  backoffMax: number;
  /** Failed stream connects (refused or broken) before falling back to long-polling. Default 5. */
  maxAttempts: number;
  /** The least wait before reconnecting a stream, even one the server ended cleanly. Default 500 ms. */
  reconnectFloor: number;
  /** A stream that lived this long and ended cleanly was not a failure; one that ended sooner backs off. Default 10 000 ms. */
  steadyStream: number;
  /** Seconds the server may hold a long-poll. Default 25. */
  pollWait: number;
  /** The least time between polls that bring nothing. Default 1 000 ms. */
  pollInterval: number;
  /** While polling, how often streaming is tried again (jittered, never later). Default 5 000 ms. */
  streamRetryInterval: number;
  /** A tab hidden this long closes its connection. Default 300 000 ms. */
  pauseWhenHiddenAfter: number;
  /** One connection per browser for the same server, user and room. Default true. */
  shareAcrossTabs: boolean;
  /** A room's newest messages in its snapshot. Default 50. */
  snapshotMessages: number;
  /** A send not answered within this is retried. Default 10 000 ms. */
  sendTimeout: number;
  /** Tries of a send whose outcome stays unknown. Default 5. */
  sendAttempts: number;
  /** Whether the stream carries typing and presence signals (`signal` events). Default false; ChatRooms: true. */
  signals: boolean;
  /** How often a TypingSender says again that its user types. Default 3 000 ms. */
  typingRenew: number;
}

/** Something with listeners for its events: a page's document or window. */
export interface Listenable {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

/** What the client needs of a page's document (a DOM `Document` is one): whether it shows. */
export interface PageDocument extends Listenable {
  readonly visibilityState: string;
}

/** What the client needs of a page's window (a DOM `Window` is one): its address, `online` and `offline`. */
export interface PageWindow extends Listenable {
  readonly location?: { readonly href: string };
}

/** Web Locks, as `navigator.locks`: one tab at a time holds a name. */
export interface Locks {
  request(name: string, callback: (lock: unknown) => unknown): Promise<unknown>;
}

/** A BroadcastChannel (browsers'; Node's too): the tabs' messages. */
export interface Channel {
  postMessage(message: unknown): void;
  onmessage: ((message: any) => unknown) | null;
  close(): void;
}

/**
 * Replacements for the platform's facilities, for tests. The page's are
 * absent outside a browser: the client then neither pauses nor shares.
 */
export interface Environment {
  fetch: typeof fetch;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
  now(): number;
  random(): number;
  document?: PageDocument;
  window?: PageWindow;
  locks?: Locks;
  BroadcastChannel?: new (name: string) => Channel;
}

/** An event listener, as EventTarget takes one. */
export type Listener = ((event: Event) => void) | { handleEvent(event: Event): void };

/** `addEventListener`'s options (a DOM `AddEventListenerOptions` is one). */
export type ListenerOptions = boolean | { capture?: boolean; once?: boolean; passive?: boolean; signal?: AbortSignal };

export type GetToken = (options: { forceRefresh: boolean }) => Promise<string>;

export interface ChatApiOptions extends Partial<Timings> {
  /** Where the server is; '' for the page's own origin. */
  baseUrl?: string;
  /** Resolves to a bearer token; `forceRefresh` after a 401 or `auth_expired`. */
  getToken: GetToken;
  fetch?: typeof fetch;
  environment?: Partial<Environment>;
}

export interface ChatStreamOptions extends ChatApiOptions {
  /** One room (a widget); omit for every room the caller may see. */
  roomId?: string | null;
}

export declare const DEFAULTS: Readonly<Timings>;
export declare function backoffDelay(attempt: number, options?: Pick<Timings, 'backoffInitial' | 'backoffMax'>, random?: () => number): number;
export declare function jittered(ms: number, random?: () => number): number;
/** The wait before the next try after `error`: `Retry-After` jittered, else the backoff. */
export declare function retryDelay(error: unknown, attempt: number, options?: Pick<Timings, 'backoffInitial' | 'backoffMax'>, random?: () => number): number;
export declare function isNewerId(id: string | null | undefined, than: string | null | undefined): boolean;
export declare function newClientId(random?: () => number): string;
/** Of two versions of one message (either may be absent), the later: a deletion is final, else the later edit. */
export declare function newerVersion(a: Message | null | undefined, b: Message | null | undefined): Message | null;
/** Who other than its author has read `message` (their cursor is at or past its seq), sorted; seen when not empty. */
export declare function seenBy(readCursors: Record<string, number> | null | undefined, message: Pick<Message, 'seq' | 'authorId'> | null | undefined): string[];
/** The room after a `room` event, members included; null when the members known before are needed and unknown, and for a deletion (drop the room). */
export declare function roomAfter(known: Room | null | undefined, data: Extract<StreamData, { type: 'room' }>): Room | null;
export declare function tokenClaims(token: string): { sub: string; role: 'admin' | 'user' };

export declare class SseParser {
  constructor(onEvent: (event: { id: string; hasId: boolean; data: string }) => void);
  push(text: string): void;
}

export interface ChatErrorOptions {
  status?: number;
  code?: string | null;
  retryAfter?: number | null;
  outcome?: 'unknown' | null;
  cause?: unknown;
}

export declare class ChatError extends Error {
  constructor(message: string, options?: ChatErrorOptions);
  /** 0 when no answer came: a network failure or a timeout. */
  readonly status: number;
  readonly code: string | null;
  /** Seconds, from `Retry-After`. */
  readonly retryAfter: number | null;
  /** 'unknown' when a write may have taken effect all the same. */
  readonly outcome: 'unknown' | null;
  /** Whether trying again may work. */
  readonly retryable: boolean;
}

export declare class SendError extends ChatError {
  /** `error`: the last try's. */
  constructor(error: ChatError, clientId: string);
  /** Send again with this `clientId`: the message is stored once, whatever happened. */
  readonly clientId: string;
}

export interface SendOptions {
  /** The message's idempotency key; made when absent. Keep it to retry. */
  clientId?: string;
  /** Ids of the caller's uploads into the room (`ChatApi.upload`), at most 10: the body may then be empty. */
  attachments?: string[];
  signal?: AbortSignal;
  onRetry?(retry: { attempt: number; error: ChatError; clientId: string }): void;
}

export declare class ChatApi {
  constructor(options: ChatApiOptions);
  readonly baseUrl: string;
  /** A fetch with the token (refreshed once on 401) and a timeout. */
  fetch(path: string, init?: RequestInit & { timeout?: number }): Promise<Response>;
  request<T = unknown>(method: string, path: string, body?: unknown, options?: { timeout?: number; signal?: AbortSignal }): Promise<T>;
  refreshToken(): void;
  rooms(options?: { limit?: number; pageToken?: string } & InboxFilter): Promise<RoomsSnapshot>;
  /** Every page of the listing as one, with the first page's `lastEventId`. */
  allRooms(): Promise<RoomsSnapshot>;
  room(roomId: string): Promise<Room>;
  /** The caller is its first member. Naming others is for admins (unless the server sets `members_add_others`): otherwise a ChatError, 403 `cannot_add_others`, and nothing is created. */
  createRoom(name: string, memberIds?: string[]): Promise<Room>;
  /** A page of a room's history, ascending: `before`, `after` or `around` a seq, else the newest. */
  messages(roomId: string, query?: MessagesQuery | string): Promise<MessagesSnapshot>;
  /**
   * A page of the messages matching `q` that the caller may see (admins:
   * every room). Rejects with a ChatError: 400 `invalid_query` (nothing to
   * search for), `invalid_cursor`; 429 past the search budget; or, cancelled
   * by `signal`, with its reason.
   */
  search(params: SearchParams): Promise<SearchPage>;
  /** Retried with one `clientId` while its outcome is unknown; rejects with a SendError. With `attachments`, the body may be empty; an id that is not the caller's unsent upload into the room is 422 `attachment_unavailable`. */
  send(roomId: string, body: string, options?: SendOptions | string): Promise<Message>;
  /**
   * Uploads a file into a room, to send with a message by its id. Rejects
   * with a ChatError: 413 `attachment_too_large`, 415
   * `attachment_type_not_allowed`, 422 `empty_file`, 409 `room_closed`,
   * 404 `room_not_found`, 429; or, cancelled, with the signal's reason.
   */
  upload(roomId: string, file: UploadBody, options?: UploadOptions): Promise<Attachment>;
  /** Signed links to an attachment and its thumbnail, absolute, valid about ten minutes. */
  attachmentLinks(attachmentId: string): Promise<AttachmentLinks>;
  /** Its author within the edit window, or an admin. Rejects with a ChatError: 403 `not_author` or `edit_window_closed`, 409 `message_deleted`, 422 `invalid_body`. */
  editMessage(roomId: string, messageId: string, body: string): Promise<Message>;
  /** Its author, or an admin: resolves with the tombstone, the same one if deleted already. */
  deleteMessage(roomId: string, messageId: string): Promise<Message>;
  /** Admins only: the room, its messages and events; the same answer again for a room deleted already. Rejects with a ChatError: 403 `forbidden`, 404 `room_not_found`. */
  deleteRoom(roomId: string): Promise<DeletedRoom>;
  markRead(roomId: string, seq: number): Promise<{ roomId: string; userId: string; lastReadSeq: number; unreadCount: number }>;
  /**
   * Changes a conversation (agents only): its status (`snoozedUntil` with
   * `snoozed` alone, in the future) and its assignee (`'me'`, an agent, or
   * `null`). Resolves with the room, its `conversation` new. Rejects with a
   * ChatError: 403 for a member; 422 `snooze_needs_a_time`,
   * `snooze_in_the_past`, `snooze_only_when_snoozed`, `not_an_agent`,
   * `nothing_to_change`.
   */
  changeConversation(roomId: string, changes: ConversationChanges): Promise<Room>;
  /** `changeConversation` with a status alone. */
  setConversationStatus(roomId: string, status: ConversationStatus, snoozedUntil?: Date | string): Promise<Room>;
  /** `changeConversation` with an assignee alone: `'me'`, an agent's id, or `null`. */
  assign(roomId: string, agentId: string | null): Promise<Room>;
  agents(): Promise<{ agents: Agent[] }>;
  inbox(): Promise<InboxSummary>;
  /** Tells the room's viewers the caller types (renew it every few seconds) or stopped. 429 beyond the rate. */
  typing(roomId: string, typing?: boolean): Promise<null>;
  /** Who of `userIds` (at most 100) is online; users the caller may not see are left out. */
  presence(userIds: Iterable<string>): Promise<PresenceSnapshot>;
}

export interface ChatStreamEventMap {
  /** Followed again by the events already delivered that it does not reflect: apply events idempotently. */
  snapshot: CustomEvent<RoomsSnapshot | MessagesSnapshot>;
  event: CustomEvent<{ id: string; data: StreamData }>;
  reset: CustomEvent<ResetData>;
  status: CustomEvent<{ status: Status; retryIn?: number }>;
  /** Also, for a room's view, right after its room's deletion: a ChatError 404 `room_deleted`. */
  error: CustomEvent<{ error: ChatError }>;
  /** With `signals: true` only. */
  signal: CustomEvent<{ data: SignalData }>;
}

export declare class ChatStream extends EventTarget {
  constructor(options: ChatStreamOptions);
  readonly status: Status;
  readonly lastEventId: string | null;
  readonly isLeader: boolean;
  /** Whether this tab's stream has shown that the path passes data as it comes; until then polling may still start. */
  readonly streamProven: boolean;
  readonly api: ChatApi;
  /** The caller, from their token, once `start()` has one. */
  readonly claims: { sub: string; role: 'admin' | 'user' } | null;
  readonly stats: { reconnects: number; lastEventAt: number | null; polls: number };
  start(): Promise<void>;
  close(): void;
  pendingTimers(): string[];
  addEventListener<K extends keyof ChatStreamEventMap>(type: K, listener: (event: ChatStreamEventMap[K]) => void, options?: ListenerOptions): void;
  addEventListener(type: string, listener: Listener | null, options?: ListenerOptions): void;
  removeEventListener<K extends keyof ChatStreamEventMap>(type: K, listener: (event: ChatStreamEventMap[K]) => void, options?: boolean | { capture?: boolean }): void;
  removeEventListener(type: string, listener: Listener | null, options?: boolean | { capture?: boolean }): void;
}

export declare class UnreadCounter {
  constructor(options: { me: string; admin?: boolean });
  /** `deleted`: deleted messages past the cursor, left out of the count; `changes`: see `asOf`. */
  readonly rooms: Map<string, { lastSeq: number; cursor: number; deleted: number; known: boolean; changes: number }>;
  /** Rooms deleted since the snapshot: their later events are ignored. */
  readonly deleted: Set<string>;
  /** A listing's room, or a fetched one with the `asOf` taken before its fetch began. */
  applyRoom(room: Pick<Room, 'id' | 'lastMessage' | 'unreadCount' | 'lastReadSeq'>, asOf?: number): void;
  /** The room whose count may have changed, or null. */
  applyEvent(data: StreamData): string | null;
  /** Rooms whose count is unknown: fetch each and `applyRoom` it with its `asOf`. */
  unknownRooms(): string[];
  /** Take before fetching a room whose count is unknown. */
  asOf(roomId: string): number;
  unread(roomId: string): number;
  readonly total: number;
}

export type ChatRoomsOptions = Omit<ChatStreamOptions, 'roomId'>;

export interface ChatRoomsState {
  status: Status;
  totalUnread: number;
  /** Newest activity first. */
  rooms: ReadonlyArray<{ room: Room; unread: number }>;
  /** The first snapshot is in. */
  ready: boolean;
}

export declare class ChatRooms extends EventTarget {
  constructor(options: ChatRoomsOptions);
  readonly stream: ChatStream;
  readonly api: ChatApi;
  start(): Promise<void>;
  close(): void;
  /** For React's useSyncExternalStore. */
  subscribe(listener: () => void): () => void;
  /** A new object after each change, the same one otherwise. */
  getSnapshot(): ChatRoomsState;
  unread(roomId: string): number;
  room(roomId: string): Room | null;
  markRead(roomId: string): Promise<{ roomId: string; userId: string; lastReadSeq: number; unreadCount: number }>;
  addEventListener(type: 'change', listener: (event: CustomEvent<{ roomIds: string[] | null }>) => void, options?: ListenerOptions): void;
  addEventListener(type: string, listener: Listener | null, options?: ListenerOptions): void;
}

/** Something whose events a keeper follows: a ChatStream, or ChatRooms' `stream`. */
export type SignalSource = Pick<ChatStream, 'addEventListener' | 'removeEventListener'> & { api?: ChatApi };

/** Who is online, per user the highest version; follows a stream's signals, refetching when it goes live. */
export declare class Presence extends EventTarget {
  constructor(options: { api?: Pick<ChatApi, 'presence'>; stream?: SignalSource | null });
  /** null while unknown. */
  online(userId: string): boolean | null;
  version(userId: string): number;
  /** Follows these users too, fetching the state of the new ones. */
  watch(userIds: Iterable<string>): Promise<void>;
  /** Fetches the snapshot again (all watched users by default); never rejects. */
  refresh(userIds?: string[]): Promise<void>;
  /** Whether it changed anything. */
  apply(data: SignalData | StreamData): boolean;
  /** The user ids whose state changed. */
  applySnapshot(snapshot: PresenceSnapshot): string[];
  close(): void;
  addEventListener(type: 'change', listener: (event: CustomEvent<{ userIds: string[] }>) => void, options?: ListenerOptions): void;
  addEventListener(type: string, listener: Listener | null, options?: ListenerOptions): void;
}

/** Who is typing per room, expiring by itself; the caller's own signals are skipped. */
export declare class Typing extends EventTarget {
  constructor(options?: { me?: string | null; stream?: SignalSource | null; environment?: Partial<Environment> });
  typists(roomId: string): string[];
  apply(data: SignalData | StreamData): void;
  /** Its author stopped typing. */
  message(message: Pick<Message, 'roomId' | 'authorId'>): void;
  /** Clears every timer. */
  close(): void;
  readonly pendingTimers: number;
  addEventListener(type: 'change', listener: (event: CustomEvent<{ roomId: string }>) => void, options?: ListenerOptions): void;
  addEventListener(type: string, listener: Listener | null, options?: ListenerOptions): void;
}

/** "I am typing", throttled: `input()` on input events, `stop()` on send or blur. */
export declare class TypingSender {
  constructor(options: {
    api: Pick<ChatApi, 'typing'>;
    room: string | null | (() => string | null);
    typingRenew?: number;
    environment?: Partial<Environment>;
  });
  input(): void;
  stop(): void;
}
