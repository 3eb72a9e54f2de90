// Type declarations for /sdk/chat-client.js.

export type Status = 'connecting' | 'live' | 'reconnecting' | 'polling' | 'paused' | 'offline';

export interface Message {
  id: string;
  roomId: string;
  seq: number;
  authorId: string;
  body: string;
  clientId: string | null;
  createdAt: string;
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
}

export type StreamData =
  | { type: 'message'; message: Message }
  | { type: 'read'; roomId: string; userId: string; lastReadSeq: number }
  | { type: 'room'; room: Room; change: 'created' | 'member_added' | 'member_removed'; userId?: string };

export interface RoomsSnapshot {
  rooms: Room[];
  totalUnread: number;
  nextPageToken: string | null;
  lastEventId: string;
}

export interface MessagesSnapshot {
  messages: Message[];
  hasMore: boolean;
  lastEventId: string;
}

export interface Timings {
  /** Silence (no event, no heartbeat) after which the stream is presumed dead. Default 60 000 ms. */
  heartbeatTimeout: number;
  /** First reconnect delay ceiling; doubles per failure, with full jitter. Default 1 000 ms. */
  backoffInitial: number;
  /** Default 16 000 ms. */
  backoffMax: number;
  /** Failed connects before falling back to polling. Default 5. */
  maxAttempts: number;
  /** Default 5 000 ms. */
  pollInterval: number;
  /** While polling, how often streaming is tried again. Default 30 000 ms. */
  streamRetryInterval: number;
  /** A tab hidden this long closes its stream. Default 300 000 ms. */
  pauseWhenHiddenAfter: number;
  /** One stream per browser for the same server, user and room. Default true. */
  shareAcrossTabs: boolean;
}

export interface ChatStreamOptions extends Partial<Timings> {
  /** Where the server is; '' for the page's own origin. */
  baseUrl?: string;
  /** One room (a widget); omit for every room the caller may see. */
  roomId?: string | null;
  /** Resolves to a bearer token; `forceRefresh` after a 401 or `auth_expired`. */
  getToken(options: { forceRefresh: boolean }): Promise<string>;
  /** Replacements for browser facilities, for tests. */
  environment?: Partial<{
    fetch: typeof fetch;
    setTimeout(fn: () => void, ms: number): unknown;
    clearTimeout(id: unknown): void;
    now(): number;
    random(): number;
    document: Document;
    window: Window;
    locks: LockManager;
    BroadcastChannel: typeof BroadcastChannel;
  }>;
}

export declare const DEFAULTS: Readonly<Timings>;
export declare function backoffDelay(attempt: number, options?: Pick<Timings, 'backoffInitial' | 'backoffMax'>, random?: () => number): number;
export declare function isNewerId(id: string, than: string | null | undefined): boolean;

export declare class SseParser {
  constructor(onEvent: (event: { id: string; hasId: boolean; data: string }) => void);
  push(text: string): void;
}

export interface ChatStreamEventMap {
  snapshot: CustomEvent<RoomsSnapshot | MessagesSnapshot>;
  event: CustomEvent<{ id: string | null; data: StreamData }>;
  reset: CustomEvent<{ type: 'reset'; reason: string }>;
  status: CustomEvent<{ status: Status }>;
}

export declare class ChatStream extends EventTarget {
  constructor(options: ChatStreamOptions);
  readonly status: Status;
  readonly lastEventId: string | null;
  readonly isLeader: boolean;
  readonly stats: { reconnects: number; lastEventAt: number | null; polls: number };
  start(): Promise<void>;
  close(): void;
  pendingTimers(): string[];
  addEventListener<K extends keyof ChatStreamEventMap>(type: K, listener: (event: ChatStreamEventMap[K]) => void, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof ChatStreamEventMap>(type: K, listener: (event: ChatStreamEventMap[K]) => void, options?: boolean | EventListenerOptions): void;
}

export declare class ChatApi {
  constructor(options: { baseUrl?: string; getToken: ChatStreamOptions['getToken']; fetch?: typeof fetch });
  rooms(): Promise<RoomsSnapshot>;
  createRoom(name: string, memberIds?: string[]): Promise<Room>;
  messages(roomId: string, query?: string): Promise<MessagesSnapshot>;
  send(roomId: string, body: string, clientId?: string): Promise<Message>;
  markRead(roomId: string, seq: number): Promise<{ roomId: string; userId: string; lastReadSeq: number; unreadCount: number }>;
}
