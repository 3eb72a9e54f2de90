// What a message and an event of the log say, for every module that shows
// them: the later of two versions of a message, who has seen a message,
// which room an event is about, and whether it deletes its room.

/** @typedef {import('../types/chat-client.js').Message} Message */

/**
 * Of two versions of one message (either may be absent), the later: a
 * deletion is final, else the later edit. Events and history pages can
 * bring an older version after a newer one (a page read before an edit
 * that arrives after it).
 * @param {Message | null | undefined} a
 * @param {Message | null | undefined} b
 * @returns {Message | null}
 */
export function newerVersion(a, b) {
  if (!a) return b ?? null;
  if (!b) return a;
  if (a.deletedAt || (!b.deletedAt && editedAt(a) >= editedAt(b))) return a;
  return b;
}

/** @param {Message} message */
const editedAt = (message) => (message.editedAt ? Date.parse(message.editedAt) : 0);

/**
 * Who other than its author has read `message`: the user ids whose cursor
 * in `readCursors` (a room's, `{ userId: lastReadSeq }`) is at or past its
 * seq, sorted. Empty when nobody has; a seen receipt is `length > 0`, or a
 * check of who (the room's members, say).
 * @param {Record<string, number> | null | undefined} readCursors
 * @param {Pick<Message, 'seq' | 'authorId'> | null | undefined} message
 * @returns {string[]}
 */
export function seenBy(readCursors, message) {
  if (!readCursors || !message) return [];
  return Object.entries(readCursors)
    .filter(([userId, seq]) => userId !== message.authorId && seq >= message.seq)
    .map(([userId]) => userId)
    .sort();
}

/**
 * Whether an event's `data` is a room's deletion (the room's last event).
 * @param {any} data
 * @returns {boolean}
 */
export const isDeletion = (data) => data?.type === 'room' && data.change === 'deleted';

/**
 * The room an event of the log is about.
 * @param {import('../types/chat-client.js').StreamData} data
 * @returns {string}
 */
export function eventRoomId(data) {
  if (data.type === 'room') return data.room.id;
  if (data.type === 'read' || data.type === 'conversation_updated') return data.roomId;
  return data.message?.roomId;
}
