// Finding messages: what a person typed (words, "a phrase", -word, or; the
// last word also as a prefix, for search-as-you-type), in every room the
// caller may see or in one, newest first or by relevance, a page at a time.
// Each hit carries its message, its room's name and a snippet in parts, the
// matching words marked: plain text, to show as text, never as HTML.
// `ChatApi` offers it as `search`; the history around a hit is
// `ChatApi.messages(roomId, { around: seq })`.

/** @typedef {import('../types/chat-client.js').SearchParams} SearchParams */
/** @typedef {import('../types/chat-client.js').SearchPage} SearchPage */
/** @typedef {import('./api.js').ChatApi} ChatApi */

/**
 * A time as the server takes it (RFC 3339), from a Date or a string.
 * @param {Date | string} at
 */
const rfc3339 = (at) => (at instanceof Date ? at.toISOString() : String(at));

/**
 * One page of the messages that match `q` (1 to 200 characters): resolves
 * with `{ hits, next }`; pass `next` back as `cursor`, with the same other
 * parameters, for the page after (`null`: there is none). Rejects with a
 * ChatError: 400 `invalid_query` (nothing to search for), `invalid_cursor`;
 * 429 with `retryAfter` past the server's budget of searches; or, aborted by
 * `signal`, with the signal's reason (a search typed over is not wanted).
 * @param {ChatApi} api
 * @param {SearchParams} params
 * @returns {Promise<SearchPage>}
 */
export function search(api, { q, roomId, authorId, since, until, sort, limit, cursor, signal }) {
  const query = new URLSearchParams({ q: String(q ?? '') });
  if (roomId) query.set('roomId', roomId);
  if (authorId) query.set('authorId', authorId);
  if (since != null) query.set('since', rfc3339(since));
  if (until != null) query.set('until', rfc3339(until));
  if (sort) query.set('sort', sort);
  if (limit) query.set('limit', String(limit));
  if (cursor) query.set('cursor', cursor);
  return api.request('GET', `/api/chat/search?${query}`, undefined, signal ? { signal } : {});
}
