// Search and the history around a message, against a real chat-server
// process (CHAT_SERVER_URL, as in server.test.mjs): a message found by its
// words and by a prefix of the last one, with its room's name and its
// matching words marked, only by those who may see it; filters; pages that
// follow `next` to the last, each hit once; a search typed over cancelled;
// nothing to search for refused; and a room's history centred on a seq,
// paged on to the newest without a gap or a repeat. One unit test (a
// scripted server) checks the query the client sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatApi, ChatError } from '../chat-client.js';
import { SERVER, skip, token, unique } from './live.mjs';
import { fakeServer } from './fakes.mjs';

/** A word no other test writes: letters only, so every store's tokenizer keeps it whole. */
const uniqueWord = () => Array.from({ length: 10 }, () => String.fromCharCode(97 + Math.floor(Math.random() * 26))).join('');

const apiFor = async (sub, role) => {
  const bearer = await token(sub, role);
  return new ChatApi({ baseUrl: SERVER, getToken: async () => bearer });
};

/**
 * `api.search(params)` until `check(page)` holds (a store may index a moment
 * after it stores), waiting out a 429 as the server asks; the page.
 */
async function searchUntil(api, params, check, what, ms = 10_000) {
  const until = Date.now() + ms;
  for (;;) {
    let page = null;
    try {
      page = await api.search(params);
    } catch (error) {
      if (!(error instanceof ChatError) || error.status !== 429) throw error;
      await new Promise((resolve) => setTimeout(resolve, (error.retryAfter ?? 1) * 1000));
    }
    if (page && check(page)) return page;
    assert.ok(Date.now() < until, `waited in vain for ${what}: ${JSON.stringify(page)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('search sends what it is given, times as RFC 3339, and nothing it is not given', async () => {
  const server = fakeServer(() => ({ json: { hits: [], next: null } }));
  const api = new ChatApi({ getToken: async () => 'token', environment: { fetch: server.fetch } });
  assert.deepEqual(await api.search({ q: 'refu' }), { hits: [], next: null });
  await api.search({
    q: '"a phrase" -not & more',
    roomId: 'r 1',
    authorId: 'alice',
    since: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)),
    until: '2026-02-01T00:00:00Z',
    sort: 'relevance',
    limit: 5,
    cursor: 'next/page=',
  });
  assert.equal(server.calls[0].path, '/api/chat/search?q=refu');
  const query = new URL(`http://x${server.calls[1].path}`).searchParams;
  assert.deepEqual(Object.fromEntries(query), {
    q: '"a phrase" -not & more',
    roomId: 'r 1',
    authorId: 'alice',
    since: '2026-01-02T03:04:05.000Z',
    until: '2026-02-01T00:00:00Z',
    sort: 'relevance',
    limit: '5',
    cursor: 'next/page=',
  });
  assert.equal(server.calls[1].headers.Authorization, 'Bearer token');
});

test('a message is found by its words and by a prefix, with its room and its matching words marked, by those who may see it', { skip }, async () => {
  const alice = unique('alice');
  const customer = await apiFor(alice);
  const agent = await apiFor(unique('agent'), 'admin');
  const stranger = await apiFor(unique('bob'));
  const word = uniqueWord();
  const room = await customer.createRoom('Order #123');
  const other = await customer.createRoom('Another order');
  await customer.send(room.id, 'Hello, anyone there?');
  const first = await customer.send(room.id, `We were promised a ${word} last week.`);
  const reply = await agent.send(room.id, `Your ${word} is on its way.`);
  const elsewhere = await customer.send(other.id, `And a ${word} here too`);

  const page = await searchUntil(agent, { q: word }, (p) => p.hits.length === 3, 'the three messages');
  // Newest first, each with its room's name and the whole message.
  assert.deepEqual(page.hits.map((hit) => hit.message.id), [elsewhere.id, reply.id, first.id]);
  assert.deepEqual(page.hits.map((hit) => hit.roomName), ['Another order', 'Order #123', 'Order #123']);
  assert.equal(page.hits[2].message.body, first.body);
  assert.equal(page.next, null);
  for (const hit of page.hits) {
    const text = hit.snippet.map((part) => part.text).join('');
    assert.ok(text.includes(word), `the snippet holds the word: ${JSON.stringify(hit.snippet)}`);
    const marked = hit.snippet.filter((part) => part.match).map((part) => part.text.toLowerCase());
    assert.ok(marked.length > 0 && marked.every((part) => part.includes(word)), JSON.stringify(hit.snippet));
    assert.ok(hit.snippet.every((part) => typeof part.text === 'string' && typeof part.match === 'boolean'));
  }

  // As the user types: the last word as a prefix.
  const typing = await agent.search({ q: `promised ${word.slice(0, 6)}` });
  assert.deepEqual(typing.hits.map((hit) => hit.message.id), [first.id]);
  // Filters: a room, an author.
  const inRoom = await agent.search({ q: word, roomId: room.id });
  assert.deepEqual(inRoom.hits.map((hit) => hit.message.id), [reply.id, first.id]);
  const byAlice = await agent.search({ q: word, authorId: alice });
  assert.deepEqual(byAlice.hits.map((hit) => hit.message.id), [elsewhere.id, first.id]);
  // A member finds what is in their rooms; anyone else, nothing.
  const own = await customer.search({ q: word });
  assert.equal(own.hits.length, 3);
  assert.deepEqual(await stranger.search({ q: word }), { hits: [], next: null });
});

test('pages of a search follow next to the last, every hit once, newest first', { skip }, async () => {
  const customer = await apiFor(unique('alice'));
  const agent = await apiFor(unique('agent'), 'admin');
  const word = uniqueWord();
  const room = await customer.createRoom('Many');
  const sent = [];
  for (let n = 1; n <= 7; n += 1) sent.push(await customer.send(room.id, `${word} number ${n}`));
  await searchUntil(agent, { q: word, limit: 50 }, (p) => p.hits.length === 7, 'all seven');
  const seen = [];
  const sizes = [];
  let cursor = null;
  do {
    const page = await agent.search({ q: word, limit: 3, cursor });
    sizes.push(page.hits.length);
    seen.push(...page.hits.map((hit) => hit.message.seq));
    cursor = page.next;
  } while (cursor);
  assert.deepEqual(sizes, [3, 3, 1]);
  assert.deepEqual(seen, sent.map((message) => message.seq).reverse());
});

test('a search typed over is cancelled, and nothing to search for is refused', { skip }, async () => {
  const agent = await apiFor(unique('agent'), 'admin');
  const typedOver = new AbortController();
  typedOver.abort();
  await assert.rejects(agent.search({ q: 'refund', signal: typedOver.signal }), { name: 'AbortError' });
  for (const q of ['', '!!!', '-refund']) {
    await assert.rejects(agent.search({ q }), (error) => {
      assert.ok(error instanceof ChatError, String(error));
      assert.equal(error.status, 400, q);
      assert.equal(error.code, 'invalid_query', q);
      assert.equal(error.retryable, false);
      return true;
    });
  }
  await assert.rejects(agent.search({ q: 'refund', cursor: 'not a cursor' }), { status: 400, code: 'invalid_cursor' });
});

test('the history around a seq is centred on it, and pages after it reach the newest, each message once', { skip }, async () => {
  const customer = await apiFor(unique('alice'));
  const room = await customer.createRoom('Long');
  for (let n = 1; n <= 120; n += 1) await customer.send(room.id, `message ${n}`);
  const around = await customer.messages(room.id, { around: 37, limit: 20 });
  const seqs = around.messages.map((message) => message.seq);
  assert.equal(seqs.length, 20);
  assert.ok(seqs.includes(37), `seq 37 in ${seqs}`);
  assert.ok(seqs.every((seq, i) => i === 0 || seq === seqs[i - 1] + 1), `ascending, no gap: ${seqs}`);
  assert.ok(seqs[0] >= 37 - 12 && seqs.at(-1) <= 37 + 12, `about half each side: ${seqs}`);
  assert.equal(around.hasMore, true, 'older ones exist');
  assert.equal(around.hasNewer, true, 'newer ones exist');
  assert.equal(around.messages.find((message) => message.seq === 37).body, 'message 37');
  // On to the newest, by `after`.
  const shown = [...seqs];
  for (let page = around; ;) {
    const more = page === around ? around.hasNewer : page.hasMore;
    if (!more) break;
    page = await customer.messages(room.id, { after: shown.at(-1), limit: 50 });
    shown.push(...page.messages.map((message) => message.seq));
  }
  assert.deepEqual(shown, Array.from({ length: 120 - seqs[0] + 1 }, (_, i) => seqs[0] + i));
  // At the end: nothing newer; at the start: nothing older.
  const last = await customer.messages(room.id, { around: 119, limit: 20 });
  assert.equal(last.hasNewer, false);
  assert.equal(last.messages.at(-1).seq, 120);
  const firstPage = await customer.messages(room.id, { around: 2, limit: 20 });
  assert.equal(firstPage.hasMore, false);
  assert.equal(firstPage.messages[0].seq, 1);
  // The other forms say nothing of newer pages.
  assert.equal((await customer.messages(room.id, { limit: 5 })).hasNewer, undefined);
});
