// One room's conversation on a page: its history, opening at the newest
// message and loading older ones on scroll up, or opening around a found
// message (marked, in view) and loading older and newer ones on scroll up
// and down; live messages, each shown once in seq order wherever it came
// from (past a page short of the newest, they wait for the pages, leaving
// no gap), at their newest version (edited, or a
// tombstone); the page's controls on messages (edit, delete) and its seen
// receipt; a message's files (an image as its thumbnail, opening the full
// image; any other file as a chip that downloads it); and the composer,
// which keeps a message in the box until it is stored, with a retry control
// if it was not, and uploads files to send with it (chosen, pasted or
// dropped), each with its progress, a Cancel, and on failure why, with
// Retry and Remove.

import { newClientId, newerVersion } from '/sdk/chat-client.js';

export function formatTime(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** A date and its time, for what may be days away (a search hit, a snooze's end). */
export function formatDateTime(at) {
  return new Date(at).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

const span = (className, text = '') => {
  const element = document.createElement('span');
  element.className = className;
  element.textContent = text;
  return element;
};

const button = (className, text, onClick) => {
  const element = document.createElement('button');
  element.type = 'button';
  element.className = className;
  element.textContent = text;
  element.addEventListener('click', onClick);
  return element;
};

/** A size for people, in 1024s (as the server's limit is set): 512 B, 9.8 KB, 25 MB. */
export function formatSize(bytes) {
  if (!(bytes >= 1024)) return `${Math.max(0, Math.round(bytes || 0))} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const shown = value < 10 ? Math.round(value * 10) / 10 : Math.round(value);
  return `${shown} ${units[unit]}`;
}

/**
 * A message as a list item (text only: bodies are never HTML). `links(id)`
 * resolves to an attachment's signed links (see `ChatApi.attachmentLinks`).
 */
export function messageItem(message, me, links = null) {
  const item = document.createElement('li');
  item.dataset.messageId = message.id;
  item.dataset.seq = String(message.seq);
  item.append(span('meta'), span('body'));
  showVersion(item, message, me, links);
  return item;
}

/** Shows this version of its message in its item: the body and "(edited)", or a tombstone line; its files. */
export function showVersion(item, message, me, links = null) {
  const deleted = Boolean(message.deletedAt);
  const found = item.classList.contains(FOUND);
  item.className = ['message', message.authorId === me && 'mine', deleted && 'deleted', found && FOUND].filter(Boolean).join(' ');
  const meta = item.querySelector('.meta');
  meta.textContent = `${message.authorId} · ${formatTime(message.createdAt)}`;
  if (message.editedAt && !deleted) meta.append(' · ', span('edited', '(edited)'));
  item.querySelector('.body').textContent = deleted ? 'message deleted' : message.body;
  showAttachments(item, deleted ? [] : message.attachments ?? [], links);
}

/** A message's files, made again only when which they are changes (an edit keeps them). */
function showAttachments(item, attachments, links) {
  const ids = attachments.map((attachment) => attachment.id).join(' ');
  const current = item.querySelector(':scope > .attachments');
  if ((current?.dataset.ids ?? '') === ids) return;
  current?.remove();
  if (!ids || !links) return;
  const box = document.createElement('div');
  box.className = 'attachments';
  box.dataset.ids = ids;
  box.append(...attachments.map((attachment) => attachmentView(attachment, links)));
  item.querySelector('.body').after(box);
}

/**
 * An attachment: an image as its thumbnail (its size from the metadata, so
 * nothing moves as it loads) linking to the full image in a new tab; any
 * other file as a chip, its name and size, that downloads it. The signed
 * links come from `links(id, fresh)`; taken again when they run out.
 */
function attachmentView(attachment, links) {
  const link = document.createElement('a');
  link.dataset.attachmentId = attachment.id;
  link.className = 'attachment';
  let image = null;
  if (attachment.thumbnail) {
    link.classList.add('image');
    link.target = '_blank';
    link.rel = 'noopener';
    image = document.createElement('img');
    image.alt = attachment.name;
    image.width = attachment.thumbnail.width;
    image.height = attachment.thumbnail.height;
    image.decoding = 'async';
    link.append(image);
  } else {
    link.classList.add('file');
    link.download = attachment.name;
    link.append(span('name', attachment.name), span('size', formatSize(attachment.size)));
  }
  let expiresAt = 0;
  let retried = false;
  const load = async (fresh = false) => {
    try {
      const found = await links(attachment.id, fresh);
      expiresAt = found.expiresAt * 1000;
      link.href = found.url;
      if (image && found.thumbnailUrl && image.getAttribute('src') !== found.thumbnailUrl) image.src = found.thumbnailUrl;
    } catch {
      // Shown without its link for now: pointing at it tries again.
      expiresAt = 0;
    }
  };
  // Links run out (in minutes): about to be used, a stale one is renewed.
  const renew = () => {
    if (Date.now() > expiresAt - 30_000) load(true);
  };
  link.addEventListener('pointerenter', renew);
  link.addEventListener('focus', renew);
  image?.addEventListener('error', () => {
    if (retried) return;
    retried = true;
    load(true);
  });
  load();
  return link;
}

/**
 * Shows a message once, in seq order, wherever it came from (a history page
 * and the stream can interleave). Returns false if it was already shown.
 */
export function showInOrder(list, message, me, shown, links = null) {
  if (shown.has(message.id)) return false;
  shown.add(message.id);
  const item = messageItem(message, me, links);
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
/** Whether a scrolled list is near its start, or its end: where the next page loads. */
const nearStart = (list) => list.scrollTop < 40;
const nearEnd = (list) => list.scrollHeight - list.scrollTop - list.clientHeight < 40;

/** The class of the message a conversation was opened at (a search hit). */
export const FOUND = 'message--found';

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
  /** Message id → the newest version seen, shown or not (yet). */
  #versions = new Map();
  #controls;
  #seen;
  #roomId = null;
  /** Bumped by every open: answers for an older opening are dropped. */
  #opening = 0;
  #hasMore = false;
  /** The opening a page of older (newer) messages loads for, if one does. */
  #loadingOlder = null;
  /**
   * Newer messages than those shown exist (opened around a message, the
   * newest page not reached yet): live messages then wait for the pages.
   */
  #hasNewer = false;
  #loadingNewer = null;
  /** The highest seq a live message brought while it waited: the pages must reach it. */
  #liveSeq = 0;
  /** The seq opened around (marked found), or null when opened at the newest. */
  #found = null;
  #empty;
  /** Attachment id → its signed links: `{ promise, expiresAt }` (ms). */
  #links = new Map();
  #linksOf = (attachmentId, fresh = false) => {
    const known = this.#links.get(attachmentId);
    if (known && !fresh && (known.expiresAt === null || known.expiresAt - Date.now() > 60_000)) return known.promise;
    const entry = { promise: null, expiresAt: null };
    entry.promise = this.#api.attachmentLinks(attachmentId).then((links) => {
      entry.expiresAt = links.expiresAt * 1000;
      return links;
    }, (error) => {
      if (this.#links.get(attachmentId) === entry) this.#links.delete(attachmentId);
      throw error;
    });
    this.#links.set(attachmentId, entry);
    return entry.promise;
  };

  /**
   * `list` is the `<ol>`; `empty` the text shown while it has no message.
   * `controls(message, lastOwn)` names what the user may do to a message
   * (`'edit'`, `'delete'`; `lastOwn`: it is the newest of theirs that is not
   * deleted); `seen(message)` whether it may carry the "Seen" receipt, shown
   * under the newest that may.
   */
  constructor({ list, api, me, empty = 'No messages yet.', controls = () => [], seen = () => false }) {
    this.#list = list;
    this.#api = api;
    this.#me = me;
    this.#empty = empty;
    this.#controls = controls;
    this.#seen = seen;
    list.addEventListener('scroll', () => {
      if (nearStart(list)) this.loadOlder();
      if (nearEnd(list)) this.loadNewer();
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
  open(roomId, page = null) {
    return this.#load(roomId, { page });
  }

  /**
   * Opens `roomId` around the message at `seq` (a search hit): the page
   * centred on it, the message in view, marked found (`message--found`)
   * and focused. Older and newer pages load as the list scrolls up and
   * down; until the newest is reached, live messages wait for the pages.
   * Never rejects.
   */
  openAround(roomId, seq) {
    return this.#load(roomId, { around: seq });
  }

  /** Loads the open room again as it was opened: at the newest, or around the found message. */
  reload() {
    if (!this.#roomId) return Promise.resolve();
    return this.#found === null ? this.open(this.#roomId) : this.openAround(this.#roomId, this.#found);
  }

  async #load(roomId, { page = null, around = null }) {
    const opening = ++this.#opening;
    this.#roomId = roomId;
    this.#shown.clear();
    this.#versions.clear();
    this.#hasMore = false;
    this.#found = around;
    // Around a message, newer ones may exist until its page says otherwise.
    this.#hasNewer = around !== null;
    this.#liveSeq = 0;
    // Busy: a screen reader announces what arrives, not a reloaded history.
    this.#list.setAttribute('aria-busy', 'true');
    this.#list.replaceChildren(notice('loading', 'Loading messages…'));
    let first = page;
    if (!first) {
      try {
        first = await this.#api.messages(roomId, around === null ? { limit: 50 } : { around, limit: 50 });
      } catch (error) {
        if (opening !== this.#opening) return;
        const retry = () => this.#load(roomId, { around });
        this.#list.replaceChildren(notice('problem', `The messages could not be loaded: ${error.message}.`, retry));
        this.#list.removeAttribute('aria-busy');
        return;
      }
    }
    if (opening !== this.#opening) return;
    // Live messages may have arrived while the page loaded: keep them (the
    // page and they interleave by seq), drop only the loading notice.
    this.#list.querySelector('.loading')?.remove();
    this.#hasMore = first.hasMore;
    for (const message of first.messages) this.#add(message);
    // An older server says nothing of newer pages: the next one tells.
    if (around !== null) this.#hasNewer = this.#newerAfter(first.hasNewer ?? true, 0);
    this.#showEmpty();
    this.refresh();
    const found = around === null ? null : this.#list.querySelector(`.message[data-seq="${around}"]`);
    if (found) this.#showFound(found);
    else this.#list.scrollTop = this.#list.scrollHeight;
    this.#list.removeAttribute('aria-busy');
    // A short page does not scroll: fill it, so older (and newer) ones can be reached.
    if (this.#hasMore && this.#list.scrollHeight <= this.#list.clientHeight) await this.loadOlder();
    if (opening === this.#opening && this.#hasNewer && nearEnd(this.#list)) await this.loadNewer();
  }

  /** Marks the found message, brings it to the middle of the list, and gives it the focus. */
  #showFound(item) {
    for (const other of this.#list.querySelectorAll(`.${FOUND}`)) other.classList.remove(FOUND);
    item.classList.add(FOUND);
    item.tabIndex = -1;
    // The list alone scrolls (not the page, whose layout is the viewport).
    const list = this.#list.getBoundingClientRect();
    const at = item.getBoundingClientRect();
    this.#list.scrollTop += at.top - list.top - Math.max(0, (this.#list.clientHeight - at.height) / 2);
    item.focus({ preventScroll: true });
  }

  /** Takes the found mark off (the search is over); the view stays where it is. */
  unmarkFound() {
    for (const item of this.#list.querySelectorAll(`.${FOUND}`)) item.classList.remove(FOUND);
  }

  /**
   * Whether newer messages exist after a page: it says so, or a live message
   * past what is shown came while it loaded (`liveBefore`: the live seq when
   * it was asked for), which a page asked for after it is sure to bring.
   */
  #newerAfter(pageSaysMore, liveBefore) {
    return pageSaysMore || (this.#liveSeq > this.lastSeq && this.#liveSeq !== liveBefore);
  }

  /**
   * Shows a message of the open room (from the stream, a poll or a send).
   * Past a page short of the newest it waits: the pages bring it, in order.
   */
  add(message) {
    if (message.roomId !== this.#roomId) return;
    if (this.#hasNewer && !this.#shown.has(message.id) && message.seq > this.lastSeq) {
      this.#liveSeq = Math.max(this.#liveSeq, message.seq);
      return;
    }
    const following = atEnd(this.#list);
    const added = this.#add(message);
    this.refresh();
    if (!added) return;
    this.#showEmpty();
    if (following || message.authorId === this.#me) this.#list.scrollTop = this.#list.scrollHeight;
  }

  /**
   * The user's own message, just sent: shown at the end, where the list
   * goes; short of the newest, the room opens at its newest again.
   */
  sent(message) {
    if (message.roomId !== this.#roomId) return Promise.resolve();
    if (!this.#hasNewer) {
      this.add(message);
      return Promise.resolve();
    }
    return this.open(this.#roomId);
  }

  /**
   * A message of the open room edited or deleted: shown at its new version
   * if it is shown, else kept for when it is (a page read before the change
   * may still bring the old one). Never adds it: older messages come by
   * scrolling, in order.
   */
  change(message) {
    if (message.roomId !== this.#roomId) return;
    const version = newerVersion(this.#versions.get(message.id), message);
    this.#versions.set(message.id, version);
    const item = this.#item(message.id);
    if (!item) return;
    showVersion(item, version, this.#me, this.#linksOf);
    // Deleted (by someone else, or another tab): nothing left to edit or delete.
    if (version.deletedAt) {
      this.#closeEditor(item);
      item.querySelector(':scope > .confirm')?.remove();
      delete item.dataset.state;
    }
    this.refresh();
  }

  /** Places the controls and the seen receipt again (after reads, which move them). */
  refresh() {
    const items = [...this.#list.querySelectorAll('.message')];
    const versions = items.map((item) => this.#versions.get(item.dataset.messageId));
    const lastOwn = versions.findLast((m) => m.authorId === this.#me && !m.deletedAt);
    const seen = versions.findLast((m) => !m.deletedAt && this.#seen(m));
    items.forEach((item, i) => {
      const message = versions[i];
      // A message being edited or deleted keeps what it shows until that is done.
      if (!item.dataset.state) this.#showControls(item, message.deletedAt ? [] : this.#controls(message, message === lastOwn));
      this.#showReceipt(item, message === seen);
    });
  }

  /** Says, at the end of the list, that the conversation cannot go on. */
  end(text) {
    this.#list.append(notice('ended', text));
  }

  /**
   * The room is deleted, its messages with it: they leave the list, which
   * says so instead, and nothing of the room shows again (an answer still
   * on its way included).
   */
  gone(text) {
    this.#opening += 1;
    this.#roomId = null;
    this.#hasMore = false;
    this.#hasNewer = false;
    this.#found = null;
    this.#shown.clear();
    this.#versions.clear();
    this.#list.removeAttribute('aria-busy');
    this.#list.replaceChildren(notice('ended gone', text));
  }

  /**
   * Loads the page of messages before the oldest shown, keeping the view
   * still. A failure leaves things as they were: the next scroll up tries again.
   */
  async loadOlder() {
    const opening = this.#opening;
    if (!this.#hasMore || this.#loadingOlder === opening || !this.#roomId) return;
    const oldest = this.#list.querySelector('[data-seq]');
    if (!oldest) return;
    this.#loadingOlder = opening;
    this.#list.setAttribute('aria-busy', 'true');
    try {
      const page = await this.#api.messages(this.#roomId, { before: Number(oldest.dataset.seq), limit: 50 });
      if (opening !== this.#opening) return;
      // The list does not anchor its scrolling (see chat.css): keep the view still here.
      const height = this.#list.scrollHeight;
      for (const message of page.messages) this.#add(message);
      this.refresh();
      this.#hasMore = page.hasMore;
      this.#list.scrollTop += this.#list.scrollHeight - height;
    } catch {
      // Scrolling up again retries.
    } finally {
      if (this.#loadingOlder === opening) this.#loadingOlder = null;
      if (opening === this.#opening && this.#loadingNewer !== opening) this.#list.removeAttribute('aria-busy');
    }
  }

  /**
   * Loads the page after the newest shown, while newer ones exist (opened
   * around a message), and on while the list still shows its end. A
   * failure leaves things as they were: the next scroll down tries again.
   */
  async loadNewer() {
    const opening = this.#opening;
    if (!this.#hasNewer || this.#loadingNewer === opening || !this.#roomId) return;
    const liveBefore = this.#liveSeq;
    this.#loadingNewer = opening;
    this.#list.setAttribute('aria-busy', 'true');
    let again = false;
    try {
      const page = await this.#api.messages(this.#roomId, { after: this.lastSeq, limit: 50 });
      if (opening !== this.#opening) return;
      // Appended below the view: it stays still.
      for (const message of page.messages) this.#add(message);
      this.#hasNewer = this.#newerAfter(page.hasMore, liveBefore);
      this.#showEmpty();
      this.refresh();
      again = this.#hasNewer && nearEnd(this.#list);
    } catch {
      // Scrolling down again retries.
    } finally {
      if (this.#loadingNewer === opening) this.#loadingNewer = null;
      if (opening === this.#opening && this.#loadingOlder !== opening) this.#list.removeAttribute('aria-busy');
    }
    if (again) await this.loadNewer();
  }

  /** Shows a message, or its newer version if it is shown already; whether it was new. */
  #add(message) {
    const known = this.#versions.get(message.id);
    const version = newerVersion(known, message);
    this.#versions.set(message.id, version);
    if (showInOrder(this.#list, version, this.#me, this.#shown, this.#linksOf)) return true;
    if (version !== known) this.change(version);
    return false;
  }

  #item(messageId) {
    return this.#list.querySelector(`.message[data-message-id="${CSS.escape(messageId)}"]`);
  }

  #showReceipt(item, seen) {
    const receipt = item.querySelector(':scope > .receipt');
    if (seen && !receipt) item.append(span('receipt', 'Seen'));
    if (!seen) receipt?.remove();
  }

  /** The message's buttons, made again only when what they offer changes (a click keeps its focus). */
  #showControls(item, names) {
    const current = item.querySelector(':scope > .actions');
    const wanted = names.join(' ');
    if ((current?.dataset.offers ?? '') === wanted) return;
    current?.remove();
    if (!wanted) return;
    const actions = document.createElement('div');
    actions.className = 'actions';
    actions.dataset.offers = wanted;
    if (names.includes('edit')) actions.append(button('edit', 'Edit', () => this.#openEditor(item)));
    if (names.includes('delete')) actions.append(button('delete', 'Delete', () => this.#confirmDelete(item)));
    const receipt = item.querySelector(':scope > .receipt');
    if (receipt) receipt.before(actions);
    else item.append(actions);
  }

  /** Says in the item why the server refused what the user asked (its own words). */
  #problem(item, what, error) {
    let problem = item.querySelector(':scope > .problem');
    if (!problem) {
      problem = document.createElement('p');
      problem.className = 'problem';
      problem.setAttribute('role', 'alert');
      item.append(problem);
    }
    const why = error?.status ? error.message : 'the server could not be reached; try again';
    problem.textContent = `${what}: ${why}.`;
  }

  #clearProblem(item) {
    item.querySelector(':scope > .problem')?.remove();
  }

  /** Deleting asks once more, in place: "Delete this message?" Delete / Keep. */
  #confirmDelete(item) {
    const { roomId } = this;
    const messageId = item.dataset.messageId;
    item.dataset.state = 'confirming';
    this.#showControls(item, []);
    const confirm = document.createElement('div');
    confirm.className = 'actions confirm';
    const done = (focus) => {
      confirm.remove();
      delete item.dataset.state;
      this.refresh();
      if (focus) item.querySelector('.actions .delete')?.focus();
    };
    const yes = button('confirm-delete', 'Delete', async () => {
      yes.disabled = true;
      try {
        this.change(await this.#api.deleteMessage(roomId, messageId));
        this.#clearProblem(item);
        this.#list.focus();
      } catch (error) {
        if (!confirm.isConnected) return; // deleted meanwhile
        this.#problem(item, 'Not deleted', error);
        done(true);
      }
    });
    const keep = button('keep', 'Keep', () => done(true));
    confirm.append(span('question', 'Delete this message?'), yes, keep);
    item.append(confirm);
    yes.focus();
  }

  /** Edits a message in place: Enter saves (Shift+Enter is a new line), Escape cancels. */
  #openEditor(item) {
    const { roomId } = this;
    const messageId = item.dataset.messageId;
    const message = this.#versions.get(messageId);
    item.dataset.state = 'editing';
    this.#showControls(item, []);
    const form = document.createElement('form');
    form.className = 'editor';
    const box = document.createElement('textarea');
    box.rows = 2;
    box.maxLength = 4000;
    box.value = message.body;
    box.setAttribute('aria-label', 'Edit message');
    const save = document.createElement('button');
    save.type = 'submit';
    save.textContent = 'Save';
    const cancel = button('cancel', 'Cancel', () => this.#closeEditor(item, true));
    form.append(box, save, cancel);
    item.querySelector('.body').hidden = true;
    item.querySelector('.body').after(form);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (item.dataset.state === 'saving') return;
      item.dataset.state = 'saving';
      box.readOnly = true;
      save.disabled = true;
      try {
        const edited = await this.#api.editMessage(roomId, messageId, box.value);
        this.#closeEditor(item, true);
        this.change(edited);
      } catch (error) {
        if (!form.isConnected) return; // deleted meanwhile
        item.dataset.state = 'editing';
        box.readOnly = false;
        save.disabled = false;
        this.#problem(item, 'Not saved', error);
        box.focus();
      }
    });
    box.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      } else if (event.key === 'Escape') {
        event.preventDefault();
        this.#closeEditor(item, true);
      }
    });
    box.focus();
  }

  #closeEditor(item, focus = false) {
    const form = item.querySelector(':scope > .editor');
    if (!form) return;
    form.remove();
    item.querySelector('.body').hidden = false;
    this.#clearProblem(item);
    delete item.dataset.state;
    this.refresh();
    if (focus) (item.querySelector('.actions .edit') ?? this.#list).focus();
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

/** Why an upload failed, in a few words for people. */
export function uploadProblem(error) {
  switch (error?.code) {
    case 'attachment_too_large': {
      // The server's message names its limit: "… the limit of 26214400 bytes".
      const limit = /(\d+) bytes/.exec(error.message ?? '');
      return limit ? `File too large (max ${formatSize(Number(limit[1]))})` : 'File too large';
    }
    case 'attachment_type_not_allowed': return 'This file type is not allowed';
    case 'empty_file': return 'This file is empty';
    case 'room_closed': return 'This conversation is closed';
    case 'room_not_found': return 'This conversation is no longer available';
    default: break;
  }
  if (error?.status === 429) return 'Too many uploads at once: retry in a moment';
  if (!error?.status) return 'Not uploaded: the server could not be reached';
  return `Not uploaded: ${error.message}`;
}

/** The most files one message carries (the server's limit). */
const FILES_PER_MESSAGE = 10;
let uploadCount = 0;

/**
 * The send form: Enter sends (Shift+Enter is a new line). The text stays in
 * the box until the server has stored it; the client retries a send whose
 * outcome is unknown with the same clientId; if it finally fails, the text
 * stays, with what went wrong and a Retry button that sends it again as the
 * same message to the same room (stored once, whatever happened before).
 *
 * Files to send with it are chosen (the Attach button), pasted into the box
 * (a screenshot) or dropped on the `dropZone`; each uploads at once, listed
 * above the box with its progress and a Cancel, then Remove; a failed one
 * says why, with Retry and Remove. Send sends the text with the files
 * uploaded by then (the box may then be empty); the others stay listed.
 */
export class Composer {
  #form;
  #box;
  #button;
  #attach;
  #picker;
  #tray;
  #problem;
  #send;
  #room;
  #upload;
  /** The message in the box: `{ text, clientId, roomId, attachmentIds, key }`. */
  #pending = null;
  /** The files listed above the box, in order: see `#addFile`. */
  #uploads = [];

  /**
   * `send(text, clientId, roomId, attachmentIds)` resolves with the stored
   * message; `room()` says which room the box writes to now; `upload(file,
   * { onProgress, signal }, roomId)` resolves with the file's Attachment
   * (without it, no files); `dropZone` takes dropped files.
   */
  constructor({ form, send, room = () => null, upload = null, dropZone = null }) {
    this.#form = form;
    this.#box = form.querySelector('textarea');
    this.#button = form.querySelector('button[type=submit], button:not([type])');
    this.#attach = form.querySelector('.attach');
    this.#picker = form.querySelector('input[type=file]');
    this.#send = send;
    this.#room = room;
    this.#upload = upload;
    this.#problem = document.createElement('p');
    this.#problem.className = 'problem';
    this.#problem.setAttribute('role', 'alert');
    this.#problem.hidden = true;
    form.before(this.#problem);
    this.#tray = document.createElement('ul');
    this.#tray.className = 'uploads';
    this.#tray.setAttribute('aria-label', 'Files to send');
    this.#tray.hidden = true;
    this.#problem.before(this.#tray);
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
    if (!upload) {
      if (this.#attach) this.#attach.hidden = true;
      return;
    }
    this.#attach?.addEventListener('click', () => this.#picker?.click());
    this.#picker?.addEventListener('change', () => {
      this.addFiles([...this.#picker.files]);
      this.#picker.value = '';
    });
    // A pasted image (a screenshot) is a file to send; pasted text stays text.
    this.#box.addEventListener('paste', (event) => {
      const data = event.clipboardData;
      const files = [...(data?.files ?? [])];
      if (files.length === 0 || data.getData('text/plain')) return;
      event.preventDefault();
      this.addFiles(files);
    });
    if (dropZone) this.#takeDrops(dropZone);
  }

  enable() {
    this.#box.disabled = false;
    this.#button.disabled = false;
    if (this.#attach) this.#attach.disabled = false;
  }

  disable() {
    this.#box.disabled = true;
    this.#button.disabled = true;
    if (this.#attach) this.#attach.disabled = true;
  }

  focus() {
    this.#box.focus();
  }

  /** Another room is open: what failed in the last one is no longer this box's, nor are its files. */
  switched() {
    const sending = new Set(this.#form.dataset.state === 'sending' ? this.#pending?.attachmentIds ?? [] : []);
    for (const upload of [...this.#uploads]) {
      if (!sending.has(upload.attachment?.id)) this.#remove(upload);
    }
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
    this.#settled(this.#pending);
  }

  /** Uploads files to send with the next message (while the box may be used). */
  addFiles(files) {
    if (!this.#upload || this.#box.disabled) return;
    for (const file of files) this.#addFile(file);
  }

  async submit() {
    const text = this.#box.value;
    if (this.#form.dataset.state === 'sending') return;
    const roomId = this.#room();
    const ready = this.#uploads
      .filter((upload) => upload.state === 'done' && upload.roomId === roomId)
      .slice(0, FILES_PER_MESSAGE);
    if (!text.trim() && ready.length === 0) return;
    // A message of files alone has no body (not even blanks).
    const body = text.trim() ? text : '';
    const attachmentIds = ready.map((upload) => upload.attachment.id);
    const key = `${text}\u0000${attachmentIds.join(' ')}`;
    // The same text and files to the same room again is the same message:
    // it keeps its clientId. A message written before its room existed goes
    // to the room its first try created.
    const sameRoom = this.#pending?.roomId === roomId || this.#pending?.roomId === null;
    if (this.#pending?.key !== key || !sameRoom) {
      this.#pending = { text, clientId: newClientId(), roomId, attachmentIds, key };
    }
    this.#pending.roomId = roomId;
    const pending = this.#pending;
    this.#form.dataset.state = 'sending';
    this.#box.readOnly = true;
    this.#button.disabled = true;
    this.#button.textContent = 'Sending…';
    this.#problem.hidden = true;
    for (const upload of ready) this.#show(upload);
    try {
      await this.#send(body, pending.clientId, roomId, attachmentIds);
      this.#settled(pending);
    } catch (error) {
      if (pending.arrived) {
        // Every answer was lost, but the message itself came back: stored.
        this.#settled(pending);
      } else {
        this.#form.dataset.state = 'failed';
        this.#showProblem(error);
      }
    } finally {
      this.#box.readOnly = false;
      // Disabled meanwhile (the room was deleted): it stays so.
      this.#button.disabled = this.#box.disabled;
      this.#button.textContent = 'Send';
      for (const upload of ready) if (upload.item.isConnected) this.#show(upload);
      this.#box.focus();
    }
  }

  #settled(pending) {
    if (this.#pending === pending) this.#pending = null;
    if (this.#box.value === pending.text) this.#box.value = '';
    // Its files went with it.
    const sent = new Set(pending.attachmentIds);
    for (const upload of [...this.#uploads]) if (sent.has(upload.attachment?.id)) this.#remove(upload);
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

  /** Files dragged over the zone may be dropped there; it says so while they hover. */
  #takeDrops(zone) {
    const carriesFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes('Files');
    zone.addEventListener('dragover', (event) => {
      if (!carriesFiles(event) || this.#box.disabled) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = 'copy';
      zone.classList.add('dropping');
    });
    zone.addEventListener('dragleave', (event) => {
      if (!zone.contains(event.relatedTarget)) zone.classList.remove('dropping');
    });
    zone.addEventListener('drop', (event) => {
      zone.classList.remove('dropping');
      if (!carriesFiles(event) || this.#box.disabled) return;
      event.preventDefault();
      this.addFiles([...event.dataTransfer.files]);
    });
  }

  /**
   * A file to send: `state` is `uploading` (with `loaded` of `total` bytes,
   * cancelled by `controller`), `done` (its `attachment`, uploaded into
   * `roomId`) or `failed` (its `error`).
   */
  #addFile(file) {
    uploadCount += 1;
    const item = document.createElement('li');
    item.className = 'upload';
    const upload = { file, item, key: `upload-${uploadCount}`, state: 'uploading', roomId: null };
    this.#uploads.push(upload);
    this.#tray.append(item);
    this.#tray.hidden = false;
    this.#start(upload);
  }

  async #start(upload) {
    const controller = new AbortController();
    Object.assign(upload, {
      state: 'uploading', controller, loaded: 0, total: upload.file.size, error: null, roomId: this.#room(),
    });
    this.#show(upload);
    const onProgress = ({ loaded, total }) => {
      if (upload.controller !== controller) return;
      upload.loaded = loaded;
      upload.total = total;
      const bar = upload.item.querySelector('progress');
      if (bar) {
        bar.max = Math.max(total, 1);
        bar.value = Math.min(loaded, bar.max);
      }
    };
    try {
      const attachment = await this.#upload(upload.file, { onProgress, signal: controller.signal }, upload.roomId);
      if (upload.controller !== controller) return;
      // A room made for the first file (the widget's) is the room now.
      upload.roomId ??= this.#room();
      Object.assign(upload, { state: 'done', attachment, controller: null });
    } catch (error) {
      if (upload.controller !== controller || controller.signal.aborted) return;
      Object.assign(upload, { state: 'failed', error, controller: null });
    }
    const focused = upload.item.contains(document.activeElement);
    this.#show(upload);
    if (focused) upload.item.querySelector('button')?.focus();
  }

  #remove(upload) {
    upload.controller?.abort();
    upload.controller = null;
    upload.item.remove();
    this.#uploads = this.#uploads.filter((other) => other !== upload);
    this.#tray.hidden = this.#uploads.length === 0;
  }

  /** An upload's line: its name and size, then its progress, or why it failed, and what may be done. */
  #show(upload) {
    const { item, file, key, state } = upload;
    item.dataset.state = state;
    const name = span('upload-name', upload.attachment?.name ?? (file.name || 'file'));
    name.id = `${key}-name`;
    const parts = [name, span('upload-size', formatSize(file.size))];
    const action = (className, text, onClick) => {
      const control = button(className, text, onClick);
      control.setAttribute('aria-describedby', name.id);
      return control;
    };
    const removeAndFocus = () => {
      this.#remove(upload);
      this.#box.focus();
    };
    if (state === 'uploading') {
      const bar = document.createElement('progress');
      bar.max = Math.max(upload.total, 1);
      bar.value = Math.min(upload.loaded, bar.max);
      bar.setAttribute('aria-label', `Uploading ${name.textContent}`);
      parts.push(bar, action('upload-cancel', 'Cancel', removeAndFocus));
    } else if (state === 'failed') {
      const why = span('upload-error', uploadProblem(upload.error));
      why.setAttribute('role', 'alert');
      parts.push(why, action('upload-retry', 'Retry', () => {
        this.#start(upload);
        upload.item.querySelector('button')?.focus();
      }), action('upload-remove', 'Remove', removeAndFocus));
    } else {
      const sending = this.#form.dataset.state === 'sending' && this.#pending?.attachmentIds.includes(upload.attachment.id);
      parts.push(span('upload-ready', sending ? 'Sending…' : 'Ready'));
      const remove = action('upload-remove', 'Remove', removeAndFocus);
      remove.disabled = Boolean(sending);
      parts.push(remove);
    }
    item.replaceChildren(...parts);
  }
}
