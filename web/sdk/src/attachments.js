// Files sent with messages: uploading one into a room (its bytes as the
// request's body, with progress and cancelling in a browser), and the signed
// links that show or download it without a token (`<img src>`, `<a href>`).
// `ChatApi` offers them as `upload` and `attachmentLinks`; a message carries
// what was uploaded when sent with `attachments: [id, …]` (see `ChatApi.send`).

import { ChatError } from './api.js';
import { retryDelay } from './common.js';

/**
 * Tries of an upload that got no answer. A server that refuses an upload
 * early (too large) may close the connection before the client has read
 * why: the next try reads it. An upload tried twice is stored twice at
 * worst, and the one never sent is deleted by the server within the hour.
 */
const UPLOAD_ATTEMPTS = 3;

/** @typedef {import('../types/chat-client.js').Attachment} Attachment */
/** @typedef {import('../types/chat-client.js').AttachmentLinks} AttachmentLinks */
/** @typedef {import('../types/chat-client.js').UploadBody} UploadBody */
/** @typedef {import('../types/chat-client.js').UploadOptions} UploadOptions */
/** @typedef {import('./api.js').ChatApi} ChatApi */

/**
 * The error an upload cancelled by its signal rejects with: the signal's
 * reason, else an Error named `AbortError` (as `fetch` would reject).
 * @param {AbortSignal | undefined} signal
 * @returns {unknown}
 */
function aborted(signal) {
  if (signal?.reason !== undefined) return signal.reason;
  const error = new Error('the upload was cancelled');
  error.name = 'AbortError';
  return error;
}

/**
 * A failed answer's ChatError, from its status, text and `Retry-After`.
 * @param {number} status
 * @param {string} text
 * @param {string | null} retryAfter
 */
function errorOf(status, text, retryAfter) {
  /** @type {any} */
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON (a proxy's page): the status says enough.
  }
  const seconds = Number(retryAfter);
  return new ChatError(body?.error?.message ?? `HTTP ${status}`, {
    status,
    code: body?.error?.code ?? null,
    retryAfter: seconds > 0 ? seconds : null,
  });
}

/**
 * The bytes' length, and a name when the body is a File.
 * @param {UploadBody} file
 * @returns {{ size: number, fileName: string | undefined }}
 */
function describe(file) {
  /** @type {any} */
  const any = file;
  const size = typeof any.size === 'number' ? any.size : any.byteLength;
  const fileName = typeof any.name === 'string' && any.name ? any.name : undefined;
  return { size: Number(size) || 0, fileName };
}

/**
 * Uploads `file` (a Blob or File, an ArrayBuffer, a Uint8Array or Buffer)
 * into `roomId`: resolves with the Attachment, to send with a message by its
 * id; rejects with a ChatError (its `status` and `code`: 413
 * `attachment_too_large`, 415 `attachment_type_not_allowed`, 422
 * `empty_file`, 409 `room_closed`, 429 with `retryAfter`…), or, cancelled by
 * `signal`, with the signal's reason (an `AbortError`). In a browser it goes
 * by XMLHttpRequest, which tells `onProgress({ loaded, total })` as the bytes
 * leave; elsewhere by fetch (progress at the start and the end only).
 * @param {ChatApi} api
 * @param {string} roomId
 * @param {UploadBody} file
 * @param {UploadOptions} [options]
 * @returns {Promise<Attachment>}
 */
export async function upload(api, roomId, file, options = {}) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await uploadOnce(api, roomId, file, options);
    } catch (error) {
      const { signal } = options;
      if (signal?.aborted) throw aborted(signal);
      if (!(error instanceof ChatError) || error.status !== 0 || attempt + 1 >= UPLOAD_ATTEMPTS) throw error;
      await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, retryDelay(error, attempt, api.options));
        signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(aborted(signal));
        }, { once: true });
      });
    }
  }
}

/**
 * One try of `upload`.
 * @param {ChatApi} api
 * @param {string} roomId
 * @param {UploadBody} file
 * @param {UploadOptions} options
 * @returns {Promise<Attachment>}
 */
async function uploadOnce(api, roomId, file, { name, onProgress, signal }) {
  if (signal?.aborted) throw aborted(signal);
  const { size, fileName } = describe(file);
  const query = new URLSearchParams();
  const chosen = name ?? fileName;
  if (chosen) query.set('name', chosen);
  const text = query.toString();
  const path = `/api/chat/rooms/${encodeURIComponent(roomId)}/attachments${text ? `?${text}` : ''}`;
  /** @type {any} */
  const XHR = /** @type {any} */ (globalThis).XMLHttpRequest;
  if (typeof XHR === 'function') return uploadByXhr(api, XHR, path, file, size, { onProgress, signal });
  onProgress?.({ loaded: 0, total: size });
  /** @type {Response} */
  let response;
  try {
    response = await api.fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: /** @type {any} */ (file),
      // Bytes take as long as they take: no deadline on the answer.
      timeout: 0,
      signal,
    });
  } catch (error) {
    if (signal?.aborted) throw aborted(signal);
    throw error;
  }
  if (!response.ok) throw errorOf(response.status, await response.text().catch(() => ''), response.headers.get('retry-after'));
  onProgress?.({ loaded: size, total: size });
  try {
    return /** @type {Attachment} */ (await response.json());
  } catch (cause) {
    throw new ChatError('the answer was cut short', { cause, outcome: 'unknown' });
  }
}

/**
 * The upload by XMLHttpRequest, with the token (a fresh one once, after a 401).
 * @param {ChatApi} api
 * @param {any} XHR
 * @param {string} path
 * @param {UploadBody} file
 * @param {number} size
 * @param {Pick<UploadOptions, 'onProgress' | 'signal'>} options
 * @returns {Promise<Attachment>}
 */
async function uploadByXhr(api, XHR, path, file, size, { onProgress, signal }) {
  for (let attempt = 0; ; attempt += 1) {
    const token = await api.getToken({ forceRefresh: attempt > 0 });
    if (signal?.aborted) throw aborted(signal);
    /** @type {{ status: number, text: string, retryAfter: string | null }} */
    const answer = await new Promise((resolve, reject) => {
      const xhr = new XHR();
      const cancel = () => xhr.abort();
      signal?.addEventListener('abort', cancel, { once: true });
      const finish = () => signal?.removeEventListener('abort', cancel);
      xhr.open('POST', `${api.baseUrl}${path}`);
      xhr.setRequestHeader('Authorization', `Bearer ${token}`);
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.upload.addEventListener('progress', (/** @type {any} */ event) => {
        onProgress?.({ loaded: event.loaded, total: event.lengthComputable ? event.total : size });
      });
      xhr.addEventListener('load', () => {
        finish();
        resolve({ status: xhr.status, text: xhr.responseText, retryAfter: xhr.getResponseHeader('retry-after') });
      });
      xhr.addEventListener('error', () => {
        finish();
        reject(new ChatError('the network failed'));
      });
      xhr.addEventListener('abort', () => {
        finish();
        reject(aborted(signal));
      });
      onProgress?.({ loaded: 0, total: size });
      xhr.send(file);
    });
    if (answer.status === 401 && attempt === 0) continue;
    if (answer.status < 200 || answer.status >= 300) throw errorOf(answer.status, answer.text, answer.retryAfter);
    onProgress?.({ loaded: size, total: size });
    try {
      return JSON.parse(answer.text);
    } catch (cause) {
      throw new ChatError('the answer was cut short', { cause, outcome: 'unknown' });
    }
  }
}

/**
 * A server path made absolute against the client's base URL (or, with
 * none, the page's address; left as it is outside a page).
 * @param {string} baseUrl
 * @param {string} path
 */
export function absoluteUrl(baseUrl, path) {
  if (/^[a-z][a-z0-9+.-]*:/i.test(path)) return path;
  // As requests go: the path after the base URL (which may have a path of its own).
  if (baseUrl) return `${baseUrl}${path}`;
  /** @type {any} */
  const location = /** @type {any} */ (globalThis).location;
  return typeof location?.href === 'string' ? new URL(path, location.href).href : path;
}

/**
 * Signed links to an attachment and its thumbnail (images only), absolute,
 * valid until `expiresAt` (Unix seconds; about ten minutes): for `<img src>`
 * and `<a href download>`, which cannot send a token.
 * @param {ChatApi} api
 * @param {string} attachmentId
 * @returns {Promise<AttachmentLinks>}
 */
export async function attachmentLinks(api, attachmentId) {
  /** @type {AttachmentLinks} */
  const links = await api.request('GET', `/api/chat/attachments/${encodeURIComponent(attachmentId)}/link`);
  return {
    ...links,
    url: absoluteUrl(api.baseUrl, links.url),
    ...(links.thumbnailUrl ? { thumbnailUrl: absoluteUrl(api.baseUrl, links.thumbnailUrl) } : {}),
  };
}
