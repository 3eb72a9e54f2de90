// chat-server-client: a dependency-free client for chat-server, for browsers
// and Node 20+.
//
// It keeps a view live without refreshes: it loads a snapshot, streams every
// change after it over Server-Sent Events, reconnects with jittered backoff
// and resumes by event id (nothing lost, nothing twice), falls back to
// long-polling the same event log when streaming fails (a proxy that buffers,
// a filter that cuts), returns to streaming as soon as it works again, pauses
// in long-hidden tabs, and shares one connection between all tabs of a
// browser. Sends carry an idempotency key kept across retries, so a send
// whose answer was lost is retried without ever storing the message twice.
// Streams opened with `signals` also bring typing and presence signals,
// which `Typing`, `Presence` and `TypingSender` keep and send.
//
// This file is the package's entry: it re-exports the public names of the
// modules in src/, one concern each:
// - common.js: defaults, the environment, event and message ids, retry delays;
// - api.js: the REST client (`ChatApi`) and its errors;
// - stream.js: the live view (`ChatStream`), which runs
//   - sse.js: the transport, Server-Sent Events over fetch;
//   - polling.js: the fallback, long-polling the event log;
//   - tabs.js: one connection shared by the tabs of a browser;
//   - lifecycle.js: pausing in hidden tabs, and offline;
// - messages.js: versions of a message, seen receipts;
// - unread.js, rooms.js: exact unread counts, and every room live;
// - presence.js, typing.js: who is online, who types;
// - attachments.js: uploading files (ChatApi's `upload`), and their links;
// - search.js: finding messages (ChatApi's `search`).
// The types are in types/chat-client.d.ts, checked against this code by tsc
// (test/types.test.mjs).

export { DEFAULTS, backoffDelay, isNewerId, jittered, newClientId, retryDelay, tokenClaims } from './src/common.js';
export { ChatApi, ChatError, SendError } from './src/api.js';
export { SseParser } from './src/sse.js';
export { ChatStream } from './src/stream.js';
export { newerVersion, seenBy } from './src/messages.js';
export { UnreadCounter } from './src/unread.js';
export { ChatRooms, roomAfter } from './src/rooms.js';
export { Presence } from './src/presence.js';
export { Typing, TypingSender } from './src/typing.js';
