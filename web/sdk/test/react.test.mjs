// The React hook, rendered by React itself over a scripted server: it shows
// the first snapshot, follows events, and closes its connection when the
// component goes. react-test-renderer (deprecated, and saying so once) is the
// one renderer that needs no DOM. Needs `npm ci` in web/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { act, createElement } from 'react';
import TestRenderer from 'react-test-renderer';
import { useChatUnread } from 'chat-server-client/react';
import { fakeServer, hanging, sseBody, streamResponse, tokenFor } from './fakes.mjs';

/** Polls `check` until it holds (bounded: a test must not hang). */
async function eventually(check, what) {
  const until = Date.now() + 5_000;
  while (!check()) {
    assert.ok(Date.now() < until, `waited in vain for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('useChatUnread shows the rooms and the total, live, and lets go on unmount', async (t) => {
  const sse = sseBody();
  const room = { id: 'r', name: 'Help', memberIds: ['me'], lastMessage: { id: 'm1', roomId: 'r', seq: 1 }, unreadCount: 1 };
  const server = fakeServer((path, init) => {
    if (path.startsWith('/api/chat/sse')) return streamResponse(sse);
    if (path.startsWith('/api/chat/events')) return hanging(init);
    return { json: { rooms: [room], totalUnread: 1, nextPageToken: null, lastEventId: '5' } };
  });
  const seen = [];
  function Badge() {
    const state = useChatUnread({
      getToken: async () => tokenFor('me'),
      user: 'me',
      shareAcrossTabs: false,
      environment: { fetch: server.fetch },
    });
    seen.push(state);
    return createElement('span', null, `${state.status} ${state.totalUnread}`);
  }
  // The first render inside act(); later updates come from the connection,
  // as in an app, so act's bookkeeping is off for them.
  globalThis.IS_REACT_ACT_ENVIRONMENT = true;
  let renderer;
  await act(async () => {
    renderer = TestRenderer.create(createElement(Badge));
  });
  globalThis.IS_REACT_ACT_ENVIRONMENT = false;
  t.after(() => renderer.unmount());
  const text = () => renderer.toJSON()?.children?.join('');
  assert.equal(seen[0].status, 'connecting');
  assert.equal(seen[0].totalUnread, 0);
  await eventually(() => seen.at(-1).ready, 'the snapshot');
  sse.write('retry: 1\n\n');
  await eventually(() => text() === 'live 1', `live with one unread, got ${text()}`);
  const message = { id: 'm2', roomId: 'r', seq: 2, authorId: 'agent', body: 'hi' };
  sse.write(`id: 6\ndata: ${JSON.stringify({ type: 'message', message })}\n\n`);
  await eventually(() => text() === 'live 2', `two unread, got ${text()}`);
  assert.deepEqual(seen.at(-1).rooms.map((entry) => [entry.room.id, entry.unread]), [['r', 2]]);
  // Read on another device: the count follows.
  sse.write('id: 7\ndata: {"type":"read","roomId":"r","userId":"me","lastReadSeq":2}\n\n');
  await eventually(() => text() === 'live 0', `none unread, got ${text()}`);
  renderer.unmount();
  await eventually(() => server.streams()[0].signal.aborted, 'the stream to close');
});
