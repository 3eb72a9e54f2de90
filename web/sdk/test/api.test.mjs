// Unit tests of ChatApi on a fake clock: sends that never duplicate (one
// clientId across every retry), which failures are retried, jitter, and the
// final failure that hands the clientId back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatApi, ChatError, SendError } from '../chat-client.js';
import { fakeClock, fakeServer, hanging, refused } from './fakes.mjs';

function api(env, server, options = {}) {
  return new ChatApi({
    getToken: async () => 'token',
    backoffInitial: 100,
    backoffMax: 800,
    sendTimeout: 1_000,
    sendAttempts: 5,
    ...options,
    environment: { ...env, fetch: server.fetch },
  });
}

const stored = (body, clientId) => ({
  status: 201,
  json: { id: 'm1', roomId: 'r', seq: 1, authorId: 'u', body, clientId, createdAt: '' },
});

test('a send whose outcome is unknown is retried with the same clientId until it is answered', async () => {
  const env = fakeClock();
  const answers = [
    () => { throw new TypeError('network down'); },
    (init) => hanging(init), // no answer: the send timeout
    () => refused(503, { 'retry-after': '1' }),
    () => ({ status: 408, json: { error: { code: 'request_timeout', message: 'slow', outcome: 'unknown' } } }),
    (init) => stored(JSON.parse(init.body).body, JSON.parse(init.body).clientId),
  ];
  const server = fakeServer((path, init) => answers.shift()(init));
  const client = api(env, server);
  const retries = [];
  let result;
  client.send('r', 'hello', { onRetry: (retry) => retries.push(retry.error.status) }).then((m) => (result = m));
  await env.advance(60_000);
  assert.equal(result.body, 'hello');
  const clientIds = server.calls.map((call) => JSON.parse(call.body).clientId);
  assert.equal(clientIds.length, 5);
  assert.equal(new Set(clientIds).size, 1, `one clientId for every try: ${clientIds}`);
  assert.deepEqual(retries, [0, 0, 503, 408]);
});

test('the waits between tries are jittered, and Retry-After is honoured', async () => {
  const env = fakeClock({ random: () => 0.5 });
  const times = [];
  const server = fakeServer(() => {
    times.push(env.now());
    return times.length < 4 ? refused(503, times.length === 2 ? { 'retry-after': '2' } : {}) : stored('x', 'c');
  });
  const client = api(env, server);
  client.send('r', 'x', { clientId: 'c' });
  await env.advance(60_000);
  // Backoff 0.5 × 100, Retry-After 2 s × 1.5, backoff 0.5 × 400.
  assert.deepEqual(times, [0, 50, 3_050, 3_250]);
});

test('a refusal that retrying cannot mend is not retried', async () => {
  const env = fakeClock();
  for (const [status, code] of [[409, 'client_id_conflict'], [422, 'invalid_body'], [404, 'room_not_found'], [403, 'forbidden']]) {
    const server = fakeServer(() => ({ status, json: { error: { code, message: 'no' } } }));
    const client = api(env, server);
    const error = await client.send('r', 'x', { clientId: 'c-1' }).catch((e) => e);
    assert.ok(error instanceof SendError);
    assert.equal(error.status, status);
    assert.equal(error.code, code);
    assert.equal(error.clientId, 'c-1');
    assert.equal(error.retryable, false);
    assert.equal(server.calls.length, 1, `${status} is final`);
  }
});

test('after its tries a send fails with its clientId, and sending with it again stores it once', async () => {
  const env = fakeClock();
  let up = false;
  const server = fakeServer((path, init) => (up ? stored('x', JSON.parse(init.body).clientId) : refused(503)));
  const client = api(env, server, { sendAttempts: 3 });
  let failure;
  client.send('r', 'x').catch((e) => (failure = e));
  await env.advance(60_000);
  assert.ok(failure instanceof SendError);
  assert.ok(failure instanceof ChatError);
  assert.equal(failure.retryable, true);
  assert.equal(server.calls.length, 3);
  up = true;
  let message;
  client.send('r', 'x', { clientId: failure.clientId }).then((m) => (message = m));
  await env.advance(0);
  assert.equal(message.clientId, failure.clientId, 'the user\'s retry is the same message');
});

test('a send may be cancelled', async () => {
  const env = fakeClock();
  const server = fakeServer(() => refused(503));
  const client = api(env, server);
  const controller = new AbortController();
  let failure;
  client.send('r', 'x', { signal: controller.signal }).catch((e) => (failure = e));
  await env.advance(10);
  controller.abort();
  await env.advance(60_000);
  assert.ok(failure instanceof SendError, String(failure));
  assert.equal(failure.outcome, 'unknown', 'the first try may have been stored');
  assert.equal(failure.clientId, JSON.parse(server.calls[0].body).clientId);
  assert.equal(server.calls.length, 1);
});
