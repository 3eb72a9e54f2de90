// A browser's own objects fit `environment`, though the declarations name
// no DOM type (see types.test.mjs): its document, window, Web Locks and
// BroadcastChannel, and listener options.
import { ChatRooms, ChatStream, type Environment } from 'chat-server-client';

const environment: Partial<Environment> = {
  document,
  window,
  locks: navigator.locks,
  BroadcastChannel,
  fetch: window.fetch.bind(window),
  setTimeout: (fn, ms) => window.setTimeout(fn, ms),
  clearTimeout: (id) => window.clearTimeout(id as number),
};
const stream = new ChatStream({ getToken: async () => 'token', environment });
const options: AddEventListenerOptions = { once: true, passive: true };
const listener: EventListenerOrEventListenerObject = { handleEvent: (event) => console.log(event.type) };
stream.addEventListener('status', (event) => console.log(event.detail.status), options);
stream.addEventListener('custom', listener, options);
stream.removeEventListener('custom', listener, { capture: false });
const target: EventTarget = new ChatRooms({ getToken: async () => 'token', environment });
console.log(target);
