// Rooms: `ChatRooms`, every room the caller may see, live, in order of
// activity, with exact unread counts and what events taught of each room
// (its last message, its readers); and `roomAfter`, a room after a `room`
// event.

import { DEFAULTS, defaultEnvironment, retryDelay } from './common.js';
import { eventRoomId, newerVersion } from './messages.js';
import { ChatStream } from './stream.js';
import { UnreadCounter } from './unread.js';

/** @typedef {import('../types/chat-client.js').ChatRoomsOptions} ChatRoomsOptions */
/** @typedef {import('../types/chat-client.js').ChatRoomsState} ChatRoomsState */
/** @typedef {import('../types/chat-client.js').Environment} Environment */
/** @typedef {import('../types/chat-client.js').Message} Message */
/** @typedef {import('../types/chat-client.js').Room} Room */
/** @typedef {import('../types/chat-client.js').RoomChange} RoomChange */
/** @typedef {import('../types/chat-client.js').RoomsSnapshot} RoomsSnapshot */
/** @typedef {import('../types/chat-client.js').StreamData} StreamData */
/** @typedef {import('../types/chat-client.js').Timings} Timings */
/**
 * What events taught of a room: part of a room (its `lastMessage`, its
 * `readCursors`), or all of it.
 * @typedef {{ lastMessage?: Message | null, readCursors?: Record<string, number>, [field: string]: any }} Learnt
 */
/**
 * A room as ChatRooms holds it: the room (null until it is fetched), its
 * place in the order of activity, and what events taught of it meanwhile.
 * @typedef {{ room: any, activity: number, learnt?: Learnt }} Known
 */

/**
 * Of two messages of a room (either may be absent), the later: the higher seq, or the newer version.
 * @param {Message | null | undefined} a
 * @param {Message | null | undefined} b
 * @returns {Message | null}
 */
function newer(a, b) {
  if (!a) return b ?? null;
  if (!b) return a;
  if (a.seq !== b.seq) return b.seq > a.seq ? b : a;
  return newerVersion(a, b);
}

/**
 * `readCursors` with `userId` at `seq` at least; the same object if they were there already.
 * @param {Record<string, number> | undefined} readCursors
 * @param {string} userId
 * @param {number} seq
 * @returns {Record<string, number>}
 */
function advance(readCursors = {}, userId, seq) {
  return (readCursors[userId] ?? 0) >= seq ? readCursors : { ...readCursors, [userId]: seq };
}

/**
 * A room with `message` as its last message's newer version, if it is that message; else the same room.
 * @param {Learnt} room
 * @param {Message} message
 * @returns {Learnt}
 */
function lastVersion(room, message) {
  if (room.lastMessage?.id !== message.id) return room;
  const lastMessage = newerVersion(room.lastMessage, message);
  return lastMessage === room.lastMessage ? room : { ...room, lastMessage };
}

/**
 * Two `readCursors` as one: each reader at the further of their two cursors (they never move back).
 * @param {Record<string, number>} [a]
 * @param {Record<string, number>} [b]
 * @returns {Record<string, number>}
 */
function mergeCursors(a = {}, b = {}) {
  const merged = { ...a };
  for (const [userId, seq] of Object.entries(b)) merged[userId] = Math.max(merged[userId] ?? 0, seq);
  return merged;
}

/**
 * The room a `room` event leaves, members included: a new room's event lists
 * them; a membership change names only the member, applied to the list
 * known before. Null when that list is unknown (fetch the room), and for a
 * deletion, which leaves no room (drop it; there is nothing to fetch).
 * @param {Room | null | undefined} known
 * @param {{ room: any, change: RoomChange, userId?: any }} data a `room` event's
 * @returns {Room | null}
 */
export function roomAfter(known, { room, change, userId }) {
  if (change === 'deleted') return null;
  if (room.memberIds) return room;
  if (!known?.memberIds) return null;
  let memberIds = known.memberIds;
  if (change === 'member_added' && !memberIds.includes(userId)) memberIds = [...memberIds, userId];
  if (change === 'member_removed') memberIds = memberIds.filter((id) => id !== userId);
  return { ...room, memberIds };
}

/**
 * Every room the caller may see, live, with exact unread counts: a
 * ChatStream over all rooms, an UnreadCounter, and the rooms themselves in
 * order of activity. For badges, inboxes and the React hook; framework-free
 * (`subscribe`/`getSnapshot` fit React's `useSyncExternalStore`).
 *
 * The snapshot (`getSnapshot()`) is a new object after each change:
 * `{ status, totalUnread, rooms: [{ room, unread }], ready }`, newest
 * activity first.
 */
export class ChatRooms extends EventTarget {
  /** @type {ChatStream} */
  #stream;
  /** @type {UnreadCounter | null} */
  #counter = null;
  /** @type {Map<string, Known>} */
  #rooms = new Map(); // id → { room, activity }
  /** @type {Set<() => void>} */
  #listeners = new Set();
  /** @type {ChatRoomsState} */
  #state = { status: 'connecting', totalUnread: 0, rooms: [], ready: false };
  /** What changed since the last notice: the state is rebuilt once per burst. */
  #dirty = false;
  /** @type {Set<string> | null} */
  #changedRooms = new Set();
  #noticeDue = false;
  /** @type {Set<string>} */
  #fetching = new Set();
  #rank = 0;
  /** @type {Timings} */
  #options;
  /** @type {Environment} */
  #env;
  /**
   * The timer of the next try at rooms whose fetch failed, and how many failed in a row.
   * @type {unknown}
   */
  #refetch = null;
  #fetchFailures = 0;
  #closed = false;

  /** @param {ChatRoomsOptions} options */
  constructor(options) {
    super();
    this.#options = { ...DEFAULTS, ...options };
    this.#env = { ...defaultEnvironment(), ...(options.environment ?? {}) };
    this.#stream = new ChatStream({ signals: true, ...options, roomId: null });
    this.#stream.addEventListener('status', (/** @type {any} */ event) => this.#changed({ status: event.detail.status }));
    this.#stream.addEventListener('snapshot', (/** @type {any} */ event) => this.#onSnapshot(event.detail));
    this.#stream.addEventListener('event', (/** @type {any} */ event) => this.#onEvent(event.detail));
    this.subscribe = this.subscribe.bind(this);
    this.getSnapshot = this.getSnapshot.bind(this);
  }

  /** The stream underneath: for the events themselves. */
  get stream() {
    return this.#stream;
  }

  get api() {
    return this.#stream.api;
  }

  start() {
    return this.#stream.start();
  }

  close() {
    this.#closed = true;
    if (this.#refetch !== null) this.#env.clearTimeout(this.#refetch);
    this.#refetch = null;
    this.#stream.close();
    this.#listeners.clear();
  }

  /** @param {() => void} listener */
  subscribe(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  getSnapshot() {
    if (this.#dirty) this.#rebuild();
    return this.#state;
  }

  /** @param {string} roomId */
  unread(roomId) {
    return this.#counter?.unread(roomId) ?? 0;
  }

  /**
   * @param {string} roomId
   * @returns {Room | null}
   */
  room(roomId) {
    return this.#rooms.get(roomId)?.room ?? null;
  }

  /**
   * Marks `roomId` read up to its newest message; the count follows at once.
   * @param {string} roomId
   */
  async markRead(roomId) {
    const seq = this.#counter?.rooms.get(roomId)?.lastSeq ?? 0;
    const state = await this.api.markRead(roomId, seq);
    if (this.#counter) {
      this.#counter.applyEvent({ type: 'read', roomId, userId: state.userId, lastReadSeq: state.lastReadSeq });
      this.#readTo(roomId, state.userId, state.lastReadSeq);
      this.#fetchUnknown();
    }
    this.#changed({}, [roomId]);
    return state;
  }

  /** @param {RoomsSnapshot} snapshot */
  #onSnapshot(snapshot) {
    // The snapshot comes after the stream knows the caller.
    const { sub, role } = /** @type {NonNullable<ChatStream['claims']>} */ (this.#stream.claims);
    // A snapshot follows a reset too: it replaces what was known.
    this.#counter = new UnreadCounter({ me: sub, admin: role === 'admin' });
    this.#rooms.clear();
    this.#rank = 0;
    for (const room of snapshot.rooms) {
      this.#counter.applyRoom(room);
      // Below any event's id: events after the snapshot come first.
      this.#rooms.set(room.id, { room, activity: -(this.#rank += 1) });
    }
    this.#changed({ ready: true }, null);
  }

  /** @param {{ id: string, data: StreamData }} event */
  #onEvent({ id, data }) {
    // Before the first snapshot: it will reflect this, or be followed by it again.
    if (!this.#counter) return;
    // Of a room deleted meanwhile (a stray replay): nothing of it comes back.
    if (this.#counter.deleted.has(eventRoomId(data))) return;
    // Null only for an event that changes no count: never a `room` or a
    // `message` event, the branches below that use it as it is.
    let roomId = /** @type {string} */ (this.#counter.applyEvent(data));
    // Event ids rise with activity: they order the rooms (exactness past
    // 2^53 does not matter for that).
    const activity = Number(id);
    if (data.type === 'room') {
      const known = this.#rooms.get(roomId);
      const room = roomAfter(known?.room, data);
      // What the event does not carry, or may carry older (a replay shows
      // the room as it was then, its last message too): as known before.
      const before = known?.room ?? known?.learnt;
      const learnt = {
        lastMessage: newer(before?.lastMessage, data.room.lastMessage),
        readCursors: before?.readCursors ?? {},
        // An agent's: a room event does not carry it.
        ...(before?.conversation ? { conversation: before.conversation } : {}),
      };
      if (!this.#counter.rooms.has(roomId)) this.#rooms.delete(roomId);
      else if (room) this.#rooms.set(roomId, { room: { ...room, ...learnt }, activity });
      else {
        // Its members are unknown here: learn the room.
        /** @type {import('./unread.js').Entry} */ (this.#counter.rooms.get(roomId)).known = false;
        this.#rooms.set(roomId, { room: null, activity, learnt });
      }
    } else if (data.type === 'message') {
      const { message } = data;
      const known = this.#rooms.get(roomId);
      // Posting reads the room: the author's cursor is at their message.
      /** @param {Learnt | undefined} what */
      const learn = (what) => ({
        ...what,
        lastMessage: newer(what?.lastMessage, message),
        readCursors: advance(what?.readCursors, message.authorId, message.seq),
      });
      if (known?.room) {
        this.#rooms.set(roomId, { room: learn(known.room), activity });
      } else {
        // A room that moved while the snapshot was paged: learn it.
        /** @type {import('./unread.js').Entry} */ (this.#counter.rooms.get(roomId)).known = false;
        this.#rooms.set(roomId, { room: null, activity, learnt: learn(known?.learnt) });
      }
    } else if (data.type === 'message_edited' || data.type === 'message_deleted') {
      // Not activity: the room keeps its place.
      if (this.#revise(data.message.roomId, (room) => lastVersion(room, data.message))) roomId = data.message.roomId;
    } else if (data.type === 'read') {
      if (this.#readTo(data.roomId, data.userId, data.lastReadSeq)) roomId = data.roomId;
    } else if (data.type === 'conversation_updated') {
      // An agent's stream only; the room keeps its place.
      if (this.#revise(data.roomId, (room) => ({ ...room, conversation: data.conversation }))) roomId = data.roomId;
    }
    if (roomId == null) return;
    this.#fetchUnknown();
    this.#changed({}, [roomId]);
  }

  /**
   * Changes what is known of a room, listed or still to be fetched (what
   * events taught of it: `lastMessage`, `readCursors`), keeping its place.
   * Whether anything changed.
   * @param {string} roomId
   * @param {(room: Learnt) => Learnt} revise
   */
  #revise(roomId, revise) {
    const entry = this.#rooms.get(roomId);
    if (!entry) return false;
    const key = entry.room ? 'room' : 'learnt';
    const before = entry[key] ?? {};
    const after = revise(before);
    if (after === before) return false;
    this.#rooms.set(roomId, { ...entry, [key]: after });
    return true;
  }

  /**
   * @param {string} roomId
   * @param {string} userId
   * @param {number} seq
   */
  #readTo(roomId, userId, seq) {
    return this.#revise(roomId, (room) => {
      const readCursors = advance(room.readCursors, userId, seq);
      return readCursors === room.readCursors ? room : { ...room, readCursors };
    });
  }

  #fetchUnknown() {
    // Called once there is a counter.
    for (const roomId of /** @type {UnreadCounter} */ (this.#counter).unknownRooms()) {
      if (this.#fetching.has(roomId)) continue;
      this.#fetching.add(roomId);
      const counter = /** @type {UnreadCounter} */ (this.#counter);
      const asOf = counter.asOf(roomId);
      this.api.room(roomId).then((room) => {
        // Left, or a new snapshot, meanwhile: what the fetch says is stale.
        if (counter !== this.#counter || !counter.rooms.has(roomId)) return;
        this.#fetchFailures = 0;
        counter.applyRoom(room, asOf);
        const known = this.#rooms.get(roomId);
        if (known) {
          // The answer may be older or newer than the events since: each
          // reader's cursor at its furthest, the last message's newest version.
          const before = known.room ?? known.learnt ?? {};
          const merged = {
            ...(known.room ?? room),
            lastMessage: newer(room.lastMessage, before.lastMessage),
            readCursors: mergeCursors(room.readCursors, before.readCursors),
          };
          // A conversation an event told of since: as new as the answer's, or newer.
          const conversation = before.conversation ?? room.conversation;
          if (conversation) merged.conversation = conversation;
          this.#rooms.set(roomId, { room: merged, activity: known.activity });
        }
        this.#changed({}, [roomId]);
      }).catch((error) => {
        if (counter !== this.#counter || !counter.rooms.has(roomId)) return;
        if (error?.status === 404) {
          // Not the caller's room (any more): it counts for nothing.
          counter.rooms.delete(roomId);
          this.#rooms.delete(roomId);
          this.#changed({}, [roomId]);
          return;
        }
        // Not reachable now: its count stays unknown (all of it unread)
        // until a try succeeds, so try again soon, not only at the next event.
        this.#refetchLater(error);
      }).finally(() => {
        this.#fetching.delete(roomId);
        // Changed while the fetch was under way, which may have read it
        // before: fetch it again (not after a failure: that waits its turn).
        const again = counter === this.#counter && counter.rooms.get(roomId)?.known === false;
        if (again && this.#refetch === null && !this.#closed) this.#fetchUnknown();
      });
    }
  }

  /** @param {unknown} error */
  #refetchLater(error) {
    if (this.#refetch !== null || this.#closed) return;
    const delay = retryDelay(error, this.#fetchFailures, this.#options, this.#env.random);
    this.#fetchFailures += 1;
    this.#refetch = this.#env.setTimeout(() => {
      this.#refetch = null;
      if (this.#counter && !this.#closed) this.#fetchUnknown();
    }, delay);
  }

  /**
   * Notes a change; listeners hear of it once per burst (a poll's page of
   * events, a stream's chunk), in a microtask, and the state is rebuilt
   * when read.
   * @param {Partial<ChatRoomsState>} patch
   * @param {string[] | null} [roomIds]
   */
  #changed(patch, roomIds = []) {
    this.#state = { ...this.#state, ...patch };
    this.#dirty = true;
    if (roomIds === null) this.#changedRooms = null;
    else if (this.#changedRooms) for (const id of roomIds) this.#changedRooms.add(id);
    if (this.#noticeDue) return;
    this.#noticeDue = true;
    queueMicrotask(() => {
      this.#noticeDue = false;
      const changed = this.#changedRooms;
      this.#changedRooms = new Set();
      for (const listener of this.#listeners) listener();
      this.dispatchEvent(new CustomEvent('change', { detail: { roomIds: changed && [...changed] } }));
    });
  }

  #rebuild() {
    const counter = this.#counter;
    const rooms = [...this.#rooms.values()]
      .filter((entry) => entry.room)
      .sort((a, b) => (b.activity ?? -Infinity) - (a.activity ?? -Infinity))
      .map(({ room }) => ({ room, unread: counter?.unread(room.id) ?? 0 }));
    this.#state = { ...this.#state, rooms, totalUnread: counter?.total ?? 0 };
    this.#dirty = false;
  }
}
