// Types of chat-server-client/react.

import type { ChatRoomsOptions, ChatRoomsState } from './chat-client.js';

export interface UseChatUnreadOptions extends ChatRoomsOptions {
  /** Whose token `getToken` returns: the view starts over when it changes. */
  user?: string;
}

/** The caller's rooms with exact unread counts and the connection status, live. */
export declare function useChatUnread(options: UseChatUnreadOptions): ChatRoomsState;
