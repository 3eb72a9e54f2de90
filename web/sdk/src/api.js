// The REST client: `ChatApi` (the JSON API with one token source, timeouts,
// a token refresh on 401, and sends that are stored once however often they
// are retried) and its errors, `ChatError` and `SendError`.

import { DEFAULTS, defaultEnvironment, newClientId, retryDelay } from './common.js';
import { attachmentLinks, upload } from './attachments.js';
import { search } from './search.js';

/** @typedef {import('../types/chat-client.js').ChatApiOptions} ChatApiOptions */
/** @typedef {import('../types/chat-client.js').SendOptions} SendOptions */
/** @typedef {import('../types/chat-client.js').Environment} Environment */
/** @typedef {import('../types/chat-client.js').ChatErrorOptions} ChatErrorOptions */
/** @typedef {import('../types/chat-client.js').UploadBody} UploadBody */
/** @typedef {import('../types/chat-client.js').UploadOptions} UploadOptions */
/** @typedef {import('../types/chat-client.js').SearchParams} SearchParams */

/**
 * A failed request. `status` is 0 when no answer came (a network error or a
 * timeout); `retryable` says whether trying again may work; `outcome` is
 * `'unknown'` when a write may have taken effect all the same.
 */
export class ChatError extends Error {
  /**
   * @param {string} message
   * @param {ChatErrorOptions} [options]
   */
  constructor(message, { status = 0, code = null, retryAfter = null, outcome = null, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ChatError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    /** @type {'unknown' | null} */
    this.outcome = outcome ?? (status === 0 ? 'unknown' : null);
  }

  get retryable() {
    return this.status === 0 || this.status === 401 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

/** A send that finally failed; `clientId` sends the same message again. */
export class SendError extends ChatError {
  /**
   * @param {ChatError} error
   * @param {string} clientId
   */
  constructor(error, clientId) {
    super(error.message, error);
    this.name = 'SendError';
    this.clientId = clientId;
  }
}

/**
 * Turns a failed answer into a ChatError, with the server's code and delay.
 * @param {Response} response
 * @returns {Promise<ChatError>}
 */
export async function answerError(response) {
  /** @type {any} */
  const body = await response.json().catch(() => null);
  const seconds = Number(response.headers.get('retry-after'));
  return new ChatError(body?.error?.message ?? `HTTP ${response.status}`, {
    status: response.status,
    code: body?.error?.code ?? null,
    retryAfter: seconds > 0 ? seconds : null,
    outcome: body?.error?.outcome ?? null,
  });
}

/** The JSON API, with one token source, timeouts and a token refresh on 401. */
export class ChatApi {
  /** @type {Environment} */
  #env;
  #needFreshToken = false;

  /** @param {ChatApiOptions} options */
  constructor({ baseUrl = '', getToken, fetch, environment = {}, ...timings }) {
    if (typeof getToken !== 'function') throw new TypeError('getToken is required');
    this.baseUrl = baseUrl;
    this.getToken = getToken;
    this.options = { ...DEFAULTS, ...timings };
    this.#env = { ...defaultEnvironment(), ...(fetch ? { fetch } : {}), ...environment };
  }

  /** Asks for a fresh token on the next request (after `auth_expired`). */
  refreshToken() {
    this.#needFreshToken = true;
  }

  /**
   * Fetches `path` with the bearer token, retrying once with a fresh token
   * after a 401. `timeout` bounds the wait for the answer's head; `signal`
   * aborts. Network failures and timeouts reject with a ChatError (status 0).
   * @param {string} path
   * @param {RequestInit & { timeout?: number }} [init]
   * @returns {Promise<Response>}
   */
  async fetch(path, { timeout = this.options.connectTimeout, signal, ...init } = {}) {
    for (let attempt = 0; ; attempt += 1) {
      const token = await this.getToken({ forceRefresh: this.#needFreshToken });
      this.#needFreshToken = false;
      // The caller's signal aborts the answer's body too, for as long as it is read.
      const controller = new AbortController();
      signal?.addEventListener('abort', () => controller.abort(), { once: true });
      if (signal?.aborted) controller.abort();
      let timedOut = false;
      const timer = timeout > 0
        ? this.#env.setTimeout(() => {
          timedOut = true;
          controller.abort();
        }, timeout)
        : null;
      let response;
      try {
        response = await this.#env.fetch(`${this.baseUrl}${path}`, /** @type {RequestInit} */ ({
          ...init,
          headers: { ...(init.headers ?? {}), Authorization: `Bearer ${token}` },
          cache: 'no-store',
          signal: controller.signal,
        }));
      } catch (cause) {
        if (signal?.aborted) throw cause;
        throw new ChatError(timedOut ? 'no answer in time' : 'the network failed', { cause });
      } finally {
        if (timer !== null) this.#env.clearTimeout(timer);
      }
      if (response.status === 401 && attempt === 0) {
        this.#needFreshToken = true;
        continue;
      }
      return response;
    }
  }

  /**
   * A JSON request; resolves with the answer's JSON, rejects with a ChatError.
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @param {{ timeout?: number, signal?: AbortSignal }} [options]
   * @returns {Promise<any>}
   */
  async request(method, path, body, options = {}) {
    const response = await this.fetch(path, {
      ...options,
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw await answerError(response);
    if (response.status === 204) return null;
    try {
      return await response.json();
    } catch (cause) {
      throw new ChatError('the answer was cut short', { cause, outcome: method === 'GET' ? null : 'unknown' });
    }
  }

  /**
   * One page of the caller's rooms, newest activity first; for agents, an
   * inbox view with `status` and `assignee` (`me`, `none` or an agent's id).
   * @param {{ limit?: number, pageToken?: string } & import('../types/chat-client.js').InboxFilter} [options]
   */
  rooms({ limit, pageToken, status, assignee } = {}) {
    const query = new URLSearchParams();
    if (limit) query.set('limit', String(limit));
    if (pageToken) query.set('pageToken', pageToken);
    // An inbox view (agents only): by status, by assignee (`me`, `none`, an id).
    if (status) query.set('status', status);
    if (assignee) query.set('assignee', assignee);
    const text = query.toString();
    return this.request('GET', `/api/chat/rooms${text ? `?${text}` : ''}`);
  }

  /**
   * Every room the caller may see, page after page, as one listing: the
   * first page's `totalUnread` and `lastEventId` (resume from it: rooms that
   * moved while paging arrive as events after it).
   * @param {{ limit?: number, pageToken?: string }} [options]
   */
  async allRooms(options = {}) {
    const first = await this.rooms({ limit: 500 });
    const rooms = [...first.rooms];
    const seen = new Set(rooms.map((room) => room.id));
    for (let token = first.nextPageToken; token;) {
      const page = await this.rooms({ limit: 500, pageToken: token, ...options });
      for (const room of page.rooms) {
        if (seen.has(room.id)) continue;
        seen.add(room.id);
        rooms.push(room);
      }
      token = page.nextPageToken;
    }
    return { ...first, rooms, nextPageToken: null };
  }

  /** @param {string} roomId */
  room(roomId) {
    return this.request('GET', `/api/chat/rooms/${encodeURIComponent(roomId)}`);
  }

  /**
   * @param {string} name
   * @param {string[]} [memberIds]
   */
  createRoom(name, memberIds = []) {
    return this.request('POST', '/api/chat/rooms', { name, memberIds });
  }

  /**
   * A page of a room's messages, ascending by seq: `{ before }`, `{ after }`,
   * `{ around }` (centred on that seq, the message included: a search hit in
   * its context; the answer's `hasNewer` says whether `after` its last there
   * is more) or the newest; `limit`.
   * @param {string} roomId
   * @param {{ before?: number, after?: number, around?: number, limit?: number } | string} [query]
   */
  messages(roomId, query = {}) {
    const text = typeof query === 'string' ? query.replace(/^\?/, '') : new URLSearchParams(
      Object.entries(query).filter(([, value]) => value != null).map(([key, value]) => /** @type {[string, string]} */ ([key, String(value)])),
    ).toString();
    return this.request('GET', `/api/chat/rooms/${encodeURIComponent(roomId)}/messages${text ? `?${text}` : ''}`);
  }

  /**
   * Sends a message, exactly once however often it is retried: it carries
   * `clientId` (made here when not given), and a send whose outcome is
   * unknown (no answer, a timeout, 408, 429, 5xx) is tried again with the
   * same one, after a jittered backoff, up to `sendAttempts` times. Rejects
   * with a SendError carrying the `clientId`: pass it to retry later.
   * `attachments` sends the caller's uploads into the room (ids from
   * `upload`, at most 10) with it; `body` may then be empty.
   * @param {string} roomId
   * @param {string} body
   * @param {SendOptions | string} [options]
   */
  async send(roomId, body, options = {}) {
    if (typeof options === 'string') options = { clientId: options };
    const clientId = options.clientId ?? newClientId(this.#env.random);
    const attachments = options.attachments?.length ? { attachments: [...options.attachments] } : {};
    const path = `/api/chat/rooms/${encodeURIComponent(roomId)}/messages`;
    // An earlier try may have been stored: the clientId says which message it was.
    /** @param {unknown} cause */
    const cancelled = (cause) => new SendError(new ChatError('the send was cancelled', { cause }), clientId);
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await this.request('POST', path, { body, clientId, ...attachments }, {
          timeout: this.options.sendTimeout,
          signal: options.signal,
        });
      } catch (error) {
        if (options.signal?.aborted) throw cancelled(error);
        const chatError = error instanceof ChatError ? error : new ChatError(String(error), { cause: error });
        if (!chatError.retryable || attempt + 1 >= this.options.sendAttempts) {
          throw new SendError(chatError, clientId);
        }
        options.onRetry?.({ attempt: attempt + 1, error: chatError, clientId });
        try {
          await this.#sleep(retryDelay(chatError, attempt, this.options, this.#env.random), options.signal);
        } catch (cause) {
          throw cancelled(cause);
        }
      }
    }
  }

  /**
   * Uploads a file into a room, to send with a message (`send`'s
   * `attachments`): resolves with the Attachment; rejects with a ChatError
   * (413 `attachment_too_large`, 415 `attachment_type_not_allowed`, 422
   * `empty_file`, 409 `room_closed`, 429…), or with an `AbortError` once
   * `signal` aborts. In a browser `onProgress({ loaded, total })` follows
   * the bytes as they leave. See src/attachments.js.
   * @param {string} roomId
   * @param {UploadBody} file
   * @param {UploadOptions} [options]
   */
  upload(roomId, file, options = {}) {
    return upload(this, roomId, file, options);
  }

  /**
   * Signed links to an attachment (`url`) and its thumbnail (`thumbnailUrl`,
   * images only), absolute, needing no token until `expiresAt` (Unix
   * seconds, about ten minutes on): for `<img src>` and `<a href>`.
   * @param {string} attachmentId
   */
  attachmentLinks(attachmentId) {
    return attachmentLinks(this, attachmentId);
  }

  /**
   * One page of the messages that match what a person typed (`q`; words,
   * `"a phrase"`, `-word`, `or`, the last word as a prefix), in every room
   * the caller may see or `roomId`, by `authorId`, `since`/`until`, `sort`
   * (`newest`, or `relevance`), `limit` (up to 50): resolves with `{ hits,
   * next }`; `next` as `cursor`, with the same parameters, pages on. Each
   * hit's `snippet` is plain text in parts, the matching ones `match: true`.
   * `signal` cancels it (a search typed over). See src/search.js.
   * @param {SearchParams} params
   */
  search(params) {
    return search(this, params);
  }

  /**
   * Replaces a message's body: its author's, within the server's edit
   * window, or anyone's for an admin. Resolves with the message as it is
   * now (same id and seq, `editedAt`); the same body again changes nothing.
   * Rejects with a ChatError: 403 `not_author` or `edit_window_closed`, 409
   * `message_deleted`, 422 `invalid_body` (its `message` says why, for people).
   * @param {string} roomId
   * @param {string} messageId
   * @param {string} body
   */
  editMessage(roomId, messageId, body) {
    return this.request('PATCH', messagePath(roomId, messageId), { body });
  }

  /**
   * Deletes a message (its author, or an admin): resolves with its
   * tombstone (`body: ''`, `deletedAt`, `deletedBy`). Deleting it again
   * answers the same tombstone, so a retry is harmless.
   * @param {string} roomId
   * @param {string} messageId
   */
  deleteMessage(roomId, messageId) {
    return this.request('DELETE', messagePath(roomId, messageId));
  }

  /**
   * Deletes a room with its messages and events (admins only): resolves
   * with `{ roomId, deletedAt, deletedBy }`, the same again for a room
   * deleted already, so a retry is harmless. Every viewer hears of it as a
   * `room` event with `change: 'deleted'`, the room's last. Rejects with a
   * ChatError: 403 `forbidden` for a non-admin, 404 `room_not_found`.
   * @param {string} roomId
   */
  deleteRoom(roomId) {
    return this.request('DELETE', `/api/chat/rooms/${encodeURIComponent(roomId)}`);
  }

  /**
   * @param {string} roomId
   * @param {number} seq
   */
  markRead(roomId, seq) {
    return this.request('POST', `/api/chat/rooms/${encodeURIComponent(roomId)}/read`, { seq });
  }

  /**
   * Changes a conversation (agents only): any of `status`, `snoozedUntil`
   * (with `snoozed` alone, in the future) and `assigneeId` (an agent, or
   * `null` to unassign). Resolves with the room, its `conversation` new;
   * every agent's global stream hears a `conversation_updated` for each
   * part that changed. Rejects with a ChatError: 403 `forbidden` for a
   * member; 422 `snooze_needs_a_time`, `snooze_in_the_past`,
   * `snooze_only_when_snoozed`, `not_an_agent` or `nothing_to_change`.
   * @param {string} roomId
   * @param {import('../types/chat-client.js').ConversationChanges} changes
   */
  changeConversation(roomId, { status, snoozedUntil, assigneeId } = {}) {
    /** @type {Record<string, unknown>} */
    const body = {};
    if (status !== undefined) body.status = status;
    if (snoozedUntil !== undefined) {
      body.snoozedUntil = snoozedUntil instanceof Date ? snoozedUntil.toISOString() : snoozedUntil;
    }
    if (assigneeId !== undefined) body.assigneeId = assigneeId;
    return this.request('PATCH', `/api/chat/rooms/${encodeURIComponent(roomId)}/conversation`, body);
  }

  /**
   * Sets a conversation's status (agents only); see `changeConversation`.
   * @param {string} roomId
   * @param {import('../types/chat-client.js').ConversationStatus} status
   * @param {Date | string} [snoozedUntil]
   */
  setConversationStatus(roomId, status, snoozedUntil) {
    return this.changeConversation(roomId, { status, snoozedUntil });
  }

  /**
   * Assigns a conversation to an agent, or to nobody with `null` (agents
   * only); see `changeConversation`.
   * @param {string} roomId
   * @param {string | null} agentId
   */
  assign(roomId, agentId) {
    return this.changeConversation(roomId, { assigneeId: agentId });
  }

  /** The agents, with presence and their open conversations (agents only). */
  agents() {
    return this.request('GET', '/api/chat/agents');
  }

  /** The inbox tabs' counts: open conversations mine, unassigned, all (agents only). */
  inbox() {
    return this.request('GET', '/api/chat/inbox');
  }

  /**
   * Tells the room's viewers the caller types (`true`, holds for the
   * server's `expiresInMs`: renew it) or stopped (`false`). Rejects with a
   * ChatError 429 beyond the server's rate (2/s, bursts of 10).
   * @param {string} roomId
   * @param {boolean} [typing]
   */
  typing(roomId, typing = true) {
    return this.request('POST', `/api/chat/rooms/${encodeURIComponent(roomId)}/typing`, { typing: Boolean(typing) });
  }

  /**
   * Who of `userIds` (at most 100) is online: `{ version, users: [{ userId,
   * online }] }`, leaving out users the caller may not see.
   * @param {Iterable<string>} userIds
   */
  presence(userIds) {
    const query = new URLSearchParams({ userIds: [...userIds].join(',') });
    return this.request('GET', `/api/chat/presence?${query}`);
  }

  /**
   * @param {number} ms
   * @param {AbortSignal} [signal]
   * @returns {Promise<void>}
   */
  #sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      const timer = this.#env.setTimeout(resolve, ms);
      signal?.addEventListener('abort', () => {
        this.#env.clearTimeout(timer);
        reject(signal.reason ?? new Error('aborted'));
      }, { once: true });
    });
  }
}

/**
 * @param {string} roomId
 * @param {string} messageId
 */
function messagePath(roomId, messageId) {
  return `/api/chat/rooms/${encodeURIComponent(roomId)}/messages/${encodeURIComponent(messageId)}`;
}
