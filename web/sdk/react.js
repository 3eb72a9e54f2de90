'use client';
// chat-server-client/react: React bindings. `useChatUnread` keeps a
// component's view of the caller's rooms and unread counts live; React is a
// peer dependency (18 or later), imported only by this module.

import { useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { ChatRooms } from './chat-client.js';

const CONNECTING = Object.freeze({ status: 'connecting', totalUnread: 0, rooms: [], ready: false });
const subscribeToNothing = () => () => {};
const connecting = () => CONNECTING;

/**
 * The caller's rooms, newest activity first, each with its exact unread
 * count, the total, and the connection status, kept live by one ChatRooms
 * (stream, long-polling fallback, resume by id). `options` are ChatRooms's:
 * `baseUrl`, `getToken` and timings. It starts over only when `baseUrl` or
 * `user` (whose token `getToken` returns) changes; `getToken` may be a new
 * function on every render.
 * @param {import('./types/react.js').UseChatUnreadOptions} options
 * @returns {import('./types/chat-client.js').ChatRoomsState}
 */
export function useChatUnread({ baseUrl = '', getToken, user, ...timings }) {
  const token = useRef(getToken);
  token.current = getToken;
  const settings = useRef(timings);
  settings.current = timings;
  const [rooms, setRooms] = useState(null);
  useEffect(() => {
    const live = new ChatRooms({
      ...settings.current,
      baseUrl,
      getToken: (options) => token.current(options),
    });
    setRooms(live);
    // Failures show in `status`; a view that cannot recover reports `error`.
    live.start().catch(() => {});
    return () => live.close();
  }, [baseUrl, user]);
  return useSyncExternalStore(
    rooms ? rooms.subscribe : subscribeToNothing,
    rooms ? rooms.getSnapshot : connecting,
    connecting,
  );
}
