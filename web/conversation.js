// One room's conversation on a page: its history, opening at the newest
// message and loading older ones on scroll up; live messages, each shown once
// in seq order wherever it came from; and the composer, which keeps a
// message in the box until it is stored, with a retry control if it was not.

import { newClientId } from '/sdk/chat-client.js';

export function formatTime(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** A message as a list item (text only: bodies are never HTML). */
export function messageItem(message, me) {
  const item = document.createElement('li');
  item.className = message.authorId === me ? 'message mine' : 'message';
  item.dataset.messageId = message.id;
  item.dataset.seq = String(message.seq);
  const meta = document.createElement('span');
  meta.className = 'meta';
  meta.textContent = `${message.authorId} · ${formatTime(message.createdAt)}`;
  const body = document.createElement('span');
  body.className = 'body';
  body.textContent = message.body;
  item.append(meta, body);
  return item;
}

/**
 * Shows a message once, in seq order, wherever it came from (a history page
 * and the stream can interleave). Returns false if it was already shown.
 */
export function showInOrder(list, message, me, shown) {
  if (shown.has(message.id)) return false;
  shown.add(message.id);
  const item = messageItem(message, me);
  let next = null;
  for (let node = list.lastElementChild; node; node = node.previousElementSibling) {
    if (node.dataset.seq === undefined || Number(node.dataset.seq) < message.seq) break;
    next = node;
  }
  list.insertBefore(item, next);
  return true;
}

/** Whether a scrolled list shows its end (within a few pixels). */
const atEnd = (list) => list.scrollHeight - list.scrollTop - list.clientHeight < 8;

export class Conversation {
  #list;
  #api;
  #me;
  #shown = new Set();
  #roomId = null;
  #hasMore = false;
  #loadingOlder = false;
  #empty;

  /** `list` is the `<ol>`; `empty` the text shown while it has no message. */
  constructor({ list, api, me, empty = 'No messages yet.' }) {
    this.#list = list;
    this.#api = api;
    this.#me = me;
    this.#empty = empty;
    list.addEventListener('scroll', () => {
      if (list.scrollTop < 40) this.loadOlder();
    });
  }

  get roomId() {
    return this.#roomId;
  }

  /** The newest seq shown. */
  get lastSeq() {
    const last = this.#list.lastElementChild;
    return last?.dataset.seq ? Number(last.dataset.seq) : 0;
  }

  /** Opens `roomId` at its newest messages (a `page` in hand, or fetched). */
  async open(roomId, page = null) {
    this.#roomId = roomId;
    this.#shown.clear();
    this.#list.replaceChildren();
    this.#hasMore = false;
    this.#showEmpty();
    const newest = page ?? await this.#api.messages(roomId, { limit: 50 });
    if (this.#roomId !== roomId) return;
    this.#hasMore = newest.hasMore;
    for (const message of newest.messages) this.#add(message);
    this.#showEmpty();
    this.#list.scrollTop = this.#list.scrollHeight;
    // A short page does not scroll: fill it, so older ones can be reached.
    if (this.#hasMore && this.#list.scrollHeight <= this.#list.clientHeight) await this.loadOlder();
  }

  /** Shows a message of the open room (from the stream, a poll or a send). */
  add(message) {
    if (message.roomId !== this.#roomId) return;
    const following = atEnd(this.#list);
    if (!this.#add(message)) return;
    this.#showEmpty();
    if (following || message.authorId === this.#me) this.#list.scrollTop = this.#list.scrollHeight;
  }

  /** Loads the page of messages before the oldest shown, keeping the view still. */
  async loadOlder() {
    if (!this.#hasMore || this.#loadingOlder || !this.#roomId) return;
    const roomId = this.#roomId;
    const oldest = this.#list.querySelector('[data-seq]');
    if (!oldest) return;
    this.#loadingOlder = true;
    try {
      const page = await this.#api.messages(roomId, { before: Number(oldest.dataset.seq), limit: 50 });
      if (this.#roomId !== roomId) return;
      const height = this.#list.scrollHeight;
      for (const message of page.messages) this.#add(message);
      this.#hasMore = page.hasMore;
      this.#list.scrollTop += this.#list.scrollHeight - height;
    } finally {
      this.#loadingOlder = false;
    }
  }

  #add(message) {
    return showInOrder(this.#list, message, this.#me, this.#shown);
  }

  #showEmpty() {
    const placeholder = this.#list.querySelector('.empty');
    if (this.#shown.size > 0) {
      placeholder?.remove();
    } else if (!placeholder) {
      const item = document.createElement('li');
      item.className = 'empty';
      item.textContent = this.#empty;
      this.#list.append(item);
    }
  }
}

/**
 * The send form: Enter sends (Shift+Enter is a new line). The text stays in
 * the box until the server has stored it; the client retries a send whose
 * outcome is unknown with the same clientId; if it finally fails, the text
 * stays, with what went wrong and a Retry button that sends it again as the
 * same message (stored once, whatever happened before).
 */
export class Composer {
  #form;
  #box;
  #button;
  #problem;
  #send;
  #pending = null; // { text, clientId } of the message in the box

  /** `send(text, clientId)` resolves with the stored message. */
  constructor({ form, send }) {
    this.#form = form;
    this.#box = form.querySelector('textarea');
    this.#button = form.querySelector('button[type=submit], button:not([type])');
    this.#send = send;
    this.#problem = document.createElement('p');
    this.#problem.className = 'problem';
    this.#problem.setAttribute('role', 'alert');
    this.#problem.hidden = true;
    form.before(this.#problem);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
    this.#box.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey) {
        event.preventDefault();
        this.submit();
      }
    });
  }

  enable() {
    this.#box.disabled = false;
    this.#button.disabled = false;
  }

  focus() {
    this.#box.focus();
  }

  async submit() {
    const text = this.#box.value;
    if (!text.trim() || this.#form.dataset.state === 'sending') return;
    // The same text again is the same message: it keeps its clientId.
    if (this.#pending?.text !== text) this.#pending = { text, clientId: newClientId() };
    const { clientId } = this.#pending;
    this.#form.dataset.state = 'sending';
    this.#box.readOnly = true;
    this.#button.disabled = true;
    this.#button.textContent = 'Sending…';
    this.#problem.hidden = true;
    try {
      await this.#send(text, clientId);
      this.#pending = null;
      if (this.#box.value === text) this.#box.value = '';
      delete this.#form.dataset.state;
    } catch (error) {
      this.#form.dataset.state = 'failed';
      this.#showProblem(error);
    } finally {
      this.#box.readOnly = false;
      this.#button.disabled = false;
      this.#button.textContent = 'Send';
      if (this.#form.dataset.state !== 'sending') this.#box.focus();
    }
  }

  #showProblem(error) {
    const why = error?.retryable === false
      ? error.message
      : 'the server could not be reached; it may have been stored: retrying sends it once';
    const text = document.createElement('span');
    text.textContent = `Not sent: ${why}.`;
    const retry = document.createElement('button');
    retry.type = 'button';
    retry.className = 'retry';
    retry.textContent = 'Retry';
    retry.addEventListener('click', () => this.submit());
    this.#problem.replaceChildren(text, ' ', retry);
    this.#problem.hidden = false;
  }
}
