// Attachments against a real chat-server process (CHAT_SERVER_URL, as in
// server.test.mjs; CHAT_ATTACHMENT_MAX_BYTES is the server's limit, which
// `cargo test` sets small): a file uploaded (with progress), sent with an
// empty body, carried by the message in its answer, in the history and on
// the stream, and read back byte-exact with the token and by its signed
// link; an image gets its size and a thumbnail; a file past the limit, and
// a cancelled upload, reject as they should.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { ChatApi, ChatError, ChatStream } from '../chat-client.js';
import { SERVER, skip, token, unique } from './live.mjs';

const MAX_BYTES = Number(process.env.CHAT_ATTACHMENT_MAX_BYTES ?? 26_214_400);

const apiFor = async (sub, role) => {
  const bearer = await token(sub, role);
  return new ChatApi({ baseUrl: SERVER, getToken: async () => bearer });
};

/** A PNG of `width` × `height` pixels, in bands of colour (small, as it compresses well), made here. */
function png(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const byte of bytes) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const tail = Buffer.alloc(4);
    tail.writeUInt32BE(crc(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, tail]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB
  const rows = [];
  for (let y = 0; y < height; y += 1) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x += 1) row.set([(x >> 5) * 24 & 0xff, (y >> 5) * 24 & 0xff, 160], 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

async function eventually(check, what, ms = 10_000) {
  const until = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    assert.ok(Date.now() < until, `waited in vain for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('a file uploaded and sent with an empty body comes back byte-exact, by token and by signed link', { skip }, async () => {
  const alice = unique('alice');
  const api = await apiFor(alice);
  const room = await api.createRoom('With files');
  const agent = await apiFor(unique('agent'), 'admin');
  const stream = new ChatStream({ baseUrl: SERVER, getToken: async () => token(alice), roomId: room.id, shareAcrossTabs: false });
  const streamed = [];
  stream.addEventListener('event', ({ detail: { data } }) => data.type === 'message' && streamed.push(data.message));
  await stream.start();
  try {
    const text = Buffer.from('The invoice, line by line.\nTotal: 42 €\n');
    const progress = [];
    const file = await api.upload(room.id, text, { name: 'invoice.txt', onProgress: (p) => progress.push(p) });
    assert.equal(file.name, 'invoice.txt');
    assert.equal(file.size, text.length);
    assert.equal(file.contentType, 'text/plain');
    assert.equal(file.thumbnail, undefined);
    assert.deepEqual(progress.at(-1), { loaded: text.length, total: text.length });

    const image = png(640, 400);
    const picture = await api.upload(room.id, new Blob([image]), { name: 'screenshot.png' });
    assert.equal(picture.contentType, 'image/png');
    assert.deepEqual([picture.width, picture.height], [640, 400]);
    assert.ok(picture.thumbnail.width <= 320 && picture.thumbnail.height <= 320, JSON.stringify(picture));

    const message = await api.send(room.id, '', { attachments: [file.id, picture.id] });
    assert.equal(message.body, '');
    assert.deepEqual(message.attachments, [file, picture]);
    const history = await agent.messages(room.id);
    assert.deepEqual(history.messages.find((m) => m.id === message.id).attachments, [file, picture]);
    const live = await eventually(() => streamed.find((m) => m.id === message.id), 'the message on the stream');
    assert.deepEqual(live.attachments, [file, picture]);

    // With the token: the bytes as sent.
    const download = await agent.fetch(`/api/chat/attachments/${file.id}`);
    assert.equal(download.status, 200);
    assert.deepEqual(Buffer.from(await download.arrayBuffer()), text);
    // By the signed links, absolute, with no token.
    const links = await api.attachmentLinks(picture.id);
    assert.ok(links.url.startsWith(`${SERVER}/`), links.url);
    assert.ok(links.thumbnailUrl.startsWith(`${SERVER}/`), links.thumbnailUrl);
    assert.ok(links.expiresAt > Date.now() / 1000);
    const original = await fetch(links.url);
    assert.equal(original.status, 200);
    assert.match(original.headers.get('content-disposition'), /^inline/);
    assert.deepEqual(Buffer.from(await original.arrayBuffer()), image);
    const thumbnail = await fetch(links.thumbnailUrl);
    assert.equal(thumbnail.headers.get('content-type'), 'image/png');
    const thumbnailBytes = Buffer.from(await thumbnail.arrayBuffer());
    assert.equal(thumbnailBytes.readUInt32BE(16), picture.thumbnail.width);
    assert.equal(thumbnailBytes.readUInt32BE(20), picture.thumbnail.height);
    const fileLinks = await agent.attachmentLinks(file.id);
    assert.equal(fileLinks.thumbnailUrl, undefined);
    const saved = await fetch(fileLinks.url);
    assert.match(saved.headers.get('content-disposition'), /^attachment/);
    assert.deepEqual(Buffer.from(await saved.arrayBuffer()), text);

    // Sent once: the same upload again is unavailable.
    await assert.rejects(api.send(room.id, 'again', { attachments: [file.id] }), (error) => {
      assert.equal(error.status, 422);
      assert.equal(error.code, 'attachment_unavailable');
      return true;
    });
  } finally {
    stream.close();
  }
});

test('an upload past the server limit rejects with attachment_too_large, and a cancelled one with an AbortError', { skip }, async () => {
  const api = await apiFor(unique('alice'));
  const room = await api.createRoom('Too much');
  const tooLarge = Buffer.alloc(MAX_BYTES + 1, 'a');
  await assert.rejects(api.upload(room.id, tooLarge, { name: 'huge.txt' }), (error) => {
    assert.ok(error instanceof ChatError);
    assert.equal(error.status, 413);
    assert.equal(error.code, 'attachment_too_large');
    assert.equal(error.retryable, false);
    return true;
  });
  await assert.rejects(api.upload(room.id, Buffer.from('<script>alert(1)</script>'), { name: 'page.html' }), (error) => {
    assert.equal(error.status, 415);
    assert.equal(error.code, 'attachment_type_not_allowed');
    return true;
  });
  const cancel = new AbortController();
  cancel.abort();
  await assert.rejects(api.upload(room.id, Buffer.from('never sent'), { signal: cancel.signal }), { name: 'AbortError' });
});
