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

/** A line in the list that is not a message: a placeholder, a notice, an error with a Retry. */
function notice(className, text, retry) {
  const item = document.createElement('li');
  item.className = className;
  item.textContent = text;
  if (retry) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'retry';
    button.textContent = 'Retry';
    button.addEventListener('click', retry);
    item.append(' ', button);
  }
  return item;
}

export class Conversation {
  #list;
  #api;
  #me;
  #shown = new Set();
  #roomId = null;
  /** Bumped by every open: answers for an older opening are dropped. */
  #opening = 0;
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
    const last = [...this.#list.querySelectorAll('[data-seq]')].at(-1);
    return last ? Number(last.dataset.seq) : 0;
  }

  /**
   * Opens `roomId` at its newest messages (a `page` in hand, or fetched).
   * Resolves once they show, or once a failure to load them says so (with a
   * Retry); never rejects.
   */
  async open(roomId, page = null) {
    const opening = ++this.#opening;
    this.#roomId = roomId;
    this.#shown.clear();
    this.#hasMore = false;
    // Busy: a screen reader announces what arrives, not a reloaded history.
    this.#list.setAttribute('aria-busy', 'true');
    this.#list.replaceChildren(notice('loading', 'Loading messages…'));
    let newest = page;
    if (!newest) {
      try {
        newest = await this.#api.messages(roomId, { limit: 50 });
      } catch (error) {
        if (opening !== this.#opening) return;
        this.#list.replaceChildren(notice('problem', `The messages could not be loaded: ${error.message}.`, () => this.open(roomId)));
        this.#list.removeAttribute('aria-busy');
        return;
      }
    }
    if (opening !== this.#opening) return;
    // Live messages may have arrived while the page loaded: keep them (the
    // page and they interleave by seq), drop only the loading notice.
    this.#list.querySelector('.loading')?.remove();
    this.#hasMore = newest.hasMore;
    for (const message of newest.messages) this.#add(message);
    this.#showEmpty();
    this.#list.scrollTop = this.#list.scrollHeight;
    this.#list.removeAttribute('aria-busy');
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

  /** Says, at the end of the list, that the conversation cannot go on. */
  end(text) {
    this.#list.append(notice('ended', text));
  }

  /**
   * Loads the page of messages before the oldest shown, keeping the view
   * still. A failure leaves things as they were: the next scroll up tries again.
   */
  async loadOlder() {
    if (!this.#hasMore || this.#loadingOlder || !this.#roomId) return;
    const opening = this.#opening;
    const oldest = this.#list.querySelector('[data-seq]');
    if (!oldest) return;
    this.#loadingOlder = true;
    this.#list.setAttribute('aria-busy', 'true');
    try {
      const page = await this.#api.messages(this.#roomId, { before: Number(oldest.dataset.seq), limit: 50 });
      if (opening !== this.#opening) return;
      // The list does not anchor its scrolling (see chat.css): keep the view still here.
      const height = this.#list.scrollHeight;
      for (const message of page.messages) this.#add(message);
      this.#hasMore = page.hasMore;
      this.#list.scrollTop += this.#list.scrollHeight - height;
    } catch {
      // Scrolling up again retries.
    } finally {
      this.#loadingOlder = false;
      if (opening === this.#opening) this.#list.removeAttribute('aria-busy');
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
      this.#list.prepend(notice('empty', this.#empty));
    }
  }
}

/**
 * The send form: Enter sends (Shift+Enter is a new line). The text stays in
 * the box until the server has stored it; the client retries a send whose
 * outcome is unknown with the same clientId; if it finally fails, the text
 * stays, with what went wrong and a Retry button that sends it again as the
 * same message to the same room (stored once, whatever happened before).
 */
export class Composer {
  #form;
  #box;
  #button;
  #problem;
  #send;
  #room;
  /** The message in the box: `{ text, clientId, roomId }`. */
  #pending = null;

  /**
   * `send(text, clientId, roomId)` resolves with the stored message; `room()`
   * says which room the box writes to now.
   */
  constructor({ form, send, room = () => null }) {
    this.#form = form;
    this.#box = form.querySelector('textarea');
    this.#button = form.querySelector('button[type=submit], button:not([type])');
    this.#send = send;
    this.#room = room;
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
      // Enter while an input method composes a word is that word's, not a send.
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
  }

  enable() {
    this.#box.disabled = false;
    this.#button.disabled = false;
  }

  disable() {
    this.#box.disabled = true;
    this.#button.disabled = true;
  }

  focus() {
    this.#box.focus();
  }

  /** Another room is open: what failed in the last one is no longer this box's. */
  switched() {
    if (this.#form.dataset.state === 'sending') return;
    this.#pending = null;
    this.#problem.hidden = true;
    delete this.#form.dataset.state;
  }

  /**
   * A message arrived from the server (by stream or poll): if it is the one
   * in the box, whose answer was lost, it was stored after all.
   */
  arrived(message) {
    if (!this.#pending || message.clientId !== this.#pending.clientId) return;
    this.#pending.arrived = true;
    if (this.#form.dataset.state === 'sending') return; // its send settles it
    this.#settled(this.#pending.text);
  }

  async submit() {
    const text = this.#box.value;
    if (!text.trim() || this.#form.dataset.state === 'sending') return;
    const roomId = this.#room();
    // The same text to the same room again is the same message: it keeps its
    // clientId. A message written before its room existed goes to the room
    // its first try created.
    const sameRoom = this.#pending?.roomId === roomId || this.#pending?.roomId === null;
    if (this.#pending?.text !== text || !sameRoom) {
      this.#pending = { text, clientId: newClientId(), roomId };
    }
    this.#pending.roomId = roomId;
    const { clientId } = this.#pending;
    this.#form.dataset.state = 'sending';
    this.#box.readOnly = true;
    this.#button.disabled = true;
    this.#button.textContent = 'Sending…';
    this.#problem.hidden = true;
    try {
      await this.#send(text, clientId, roomId);
      this.#settled(text);
    } catch (error) {
      if (this.#pending?.arrived) {
        // Every answer was lost, but the message itself came back: stored.
        this.#settled(text);
      } else {
        this.#form.dataset.state = 'failed';
        this.#showProblem(error);
      }
    } finally {
      this.#box.readOnly = false;
      this.#button.disabled = false;
      this.#button.textContent = 'Send';
      this.#box.focus();
    }
  }

  #settled(text) {
    this.#pending = null;
    if (this.#box.value === text) this.#box.value = '';
    this.#problem.hidden = true;
    delete this.#form.dataset.state;
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
