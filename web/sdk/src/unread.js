// Unread counts: `UnreadCounter`, exact per room from a snapshot and the
// events after it, whatever their order or repeats.

import { eventRoomId } from './messages.js';

/** @typedef {import('../types/chat-client.js').Room} Room */
/** @typedef {import('../types/chat-client.js').StreamData} StreamData */
/**
 * What a room's count is worked out from: its newest seq, the caller's
 * cursor, the deleted messages past it, whether it is `known`, and how
 * many `changes` unsettled it (see `asOf`).
 * @typedef {{ lastSeq: number, cursor: number, deleted: number, known: boolean, changes: number }} Entry
 */

/**
 * Exact unread counts from a snapshot and the events after it, per room:
 * each room keeps its newest seq, the caller's read cursor (both only ever
 * moving forward) and how many messages past the cursor are deleted (the
 * server leaves them out of its count), so applying a snapshot or an event
 * twice, or a snapshot older than some events, changes nothing. A message
 * moves its author's cursor to it (posting reads the room), so a user's own
 * posts from another device clear that room's count too. A room's deletion
 * drops it for good: no later event of it counts, and it is never fetched.
 *
 * Which deleted messages a snapshot left out it does not say, only how
 * many: a deletion past the cursor, or a cursor that moves only part of the
 * way past deleted messages, makes the room's count unknown until the room
 * is fetched again (`unknownRooms`, `asOf`).
 */
export class UnreadCounter {
  /**
   * `me`: the caller's user id; `admin`: whether they see every room.
   * @param {{ me: string, admin?: boolean }} options
   */
  constructor({ me, admin = false }) {
    this.me = me;
    this.admin = admin;
    /** @type {Map<string, Entry>} */
    this.rooms = new Map();
    /**
     * Rooms deleted since the snapshot: nothing of them counts again, nothing fetches them.
     * @type {Set<string>}
     */
    this.deleted = new Set();
  }

  /**
   * @param {string} roomId
   * @returns {Entry}
   */
  #entry(roomId) {
    let entry = this.rooms.get(roomId);
    if (!entry) {
      entry = { lastSeq: 0, cursor: 0, deleted: 0, known: false, changes: 0 };
      this.rooms.set(roomId, entry);
    }
    return entry;
  }

  /**
   * The count can no longer be worked out from what the entry holds: the
   * room must be fetched, and a fetch already under way may have read it
   * before this change (its answer does not make the room known).
   * @param {Entry} entry
   */
  #unsettle(entry) {
    entry.known = false;
    entry.changes += 1;
  }

  /**
   * A room as a listing or `GET /rooms/{id}` shows it (with `unreadCount`,
   * and `lastReadSeq` from servers that send it), or as a `room` event does
   * (its newest seq only). For a room fetched because its count was
   * unknown, pass the `asOf(roomId)` taken before the fetch began.
   * @param {Pick<Room, 'id' | 'lastMessage' | 'unreadCount' | 'lastReadSeq'>} room
   * @param {number} [asOf]
   * @returns {Entry}
   */
  applyRoom(room, asOf) {
    const entry = this.#entry(room.id);
    const lastSeq = room.lastMessage?.seq ?? 0;
    if (room.unreadCount == null) {
      entry.lastSeq = Math.max(entry.lastSeq, lastSeq);
      return entry;
    }
    // One moment of the room: the cursor, and the deleted messages past it
    // that the count leaves out.
    const cursor = room.lastReadSeq ?? lastSeq - room.unreadCount;
    const deleted = Math.max(0, lastSeq - cursor - room.unreadCount);
    if (entry.known) {
      // Both states are true ones, at different moments: the later is
      // ahead in seq or cursor; with both equal, only deletions differ, and
      // they only accumulate.
      if (lastSeq > entry.lastSeq || cursor > entry.cursor) {
        Object.assign(entry, { lastSeq, cursor, deleted });
      } else if (lastSeq === entry.lastSeq && cursor === entry.cursor) {
        entry.deleted = Math.max(entry.deleted, deleted);
      }
      return entry;
    }
    // What events added while it was unknown is newer messages (none of
    // them deleted: a deletion unsettles the room), or it stays unknown.
    entry.lastSeq = Math.max(entry.lastSeq, lastSeq);
    entry.cursor = Math.max(entry.cursor, cursor);
    entry.deleted = deleted;
    entry.known = asOf === undefined || asOf === entry.changes;
    return entry;
  }

  /**
   * Take before fetching a room whose count is unknown; give to `applyRoom` with its answer.
   * @param {string} roomId
   * @returns {number}
   */
  asOf(roomId) {
    return this.rooms.get(roomId)?.changes ?? 0;
  }

  /**
   * The caller's cursor moves to `seq` (a read, or a message of theirs).
   * @param {Entry} entry
   * @param {number} seq
   */
  #moveCursor(entry, seq) {
    if (seq <= entry.cursor) return;
    entry.cursor = seq;
    entry.lastSeq = Math.max(entry.lastSeq, seq);
    if (!entry.known) this.#unsettle(entry);
    else if (seq >= entry.lastSeq) entry.deleted = 0;
    // Which of the deleted messages it passed is not known.
    else if (entry.deleted > 0) this.#unsettle(entry);
  }

  /**
   * One event's `data`. Returns the id of the room whose count may have
   * changed, or null; `known: false` on the entry says the count is unknown
   * (fetch the room and `applyRoom` it, see `unknownRooms`).
   * @param {StreamData} data
   * @returns {string | null}
   */
  applyEvent(data) {
    if (this.deleted.has(eventRoomId(data))) return null;
    switch (data.type) {
      case 'message': {
        const { roomId, seq, authorId } = data.message;
        const entry = this.#entry(roomId);
        entry.lastSeq = Math.max(entry.lastSeq, seq);
        if (authorId === this.me) this.#moveCursor(entry, seq);
        return roomId;
      }
      case 'message_deleted': {
        const { roomId, seq, authorId } = data.message;
        const entry = this.rooms.get(roomId);
        // Whether the count already leaves it out (a snapshot taken after
        // the deletion, an event seen twice) cannot be told: ask the server.
        if (!entry || authorId === this.me || seq <= entry.cursor) return null;
        this.#unsettle(entry);
        return roomId;
      }
      case 'read': {
        if (data.userId !== this.me) return null;
        const entry = this.#entry(data.roomId);
        this.#moveCursor(entry, data.lastReadSeq);
        return data.roomId;
      }
      case 'room': {
        const { room, change, userId } = /** @type {typeof data & { userId?: string }} */ (data);
        if (change === 'deleted') {
          this.rooms.delete(room.id);
          this.deleted.add(room.id);
          return room.id;
        }
        if (change === 'member_removed' && userId === this.me && !this.admin) {
          this.rooms.delete(room.id);
          return room.id;
        }
        const entry = this.applyRoom(room);
        // A new room has no messages to have read; one joined may have.
        if (change === 'created' && !entry.known && entry.lastSeq === 0) entry.known = true;
        return room.id;
      }
      default:
        return null;
    }
  }

  /**
   * Rooms whose count is unknown: fetch each, taking `asOf(id)` first, and
   * `applyRoom(room, asOf)` the answer. A room changed while its fetch was
   * under way stays unknown: fetch it again.
   */
  unknownRooms() {
    return [...this.rooms].filter(([, entry]) => !entry.known).map(([id]) => id);
  }

  /**
   * @param {string} roomId
   * @returns {number}
   */
  unread(roomId) {
    const entry = this.rooms.get(roomId);
    return entry ? Math.max(0, entry.lastSeq - entry.cursor - entry.deleted) : 0;
  }

  get total() {
    let total = 0;
    for (const id of this.rooms.keys()) total += this.unread(id);
    return total;
  }
}
