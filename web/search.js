// Message search on the admin panel: the box, and the results that take the
// room list's place while it has words. A search goes out as the agent types
// (the answer to the newest words only: one typed over is aborted), its hits
// grouped by conversation with the matching words marked, a page at a time;
// too many searches wait as long as the server says, a failure offers Retry.
// A hit opens its conversation at that message; Escape, or an empty box,
// brings the list back.

import { formatDateTime } from '/assets/conversation.js';

/** Typing pauses this long before a search goes out. */
const DEBOUNCE = 250;
const PAGE = 20;

const span = (className) => Object.assign(document.createElement('span'), { className });

export class SearchPanel {
  #api;
  #box;
  #results;
  #status;
  #retry;
  #hits;
  #more;
  #list;
  #roomName;
  #open;
  #cleared;
  /** The words of the search shown. */
  #q = '';
  /** The request under way: aborted when typed over, only the newest answer shows. */
  #controller = null;
  /** The search typed (debounced), or retried after a refusal, not yet sent. */
  #timer = null;
  /** The next page's cursor. */
  #next = null;
  /** The hits' groups by room id: `{ item, list, name }`. */
  #groups = new Map();
  #count = 0;

  /**
   * `form` holds the search box; `results` the status line, `#search-retry`,
   * `#search-hits` and `#search-more`; `list` is what the results take the
   * place of. `roomName(roomId)` names a hit's room when the hit does not;
   * `open(roomId, seq, name)` opens a hit's conversation at it; `cleared()`
   * says the search ended (the list is back).
   */
  constructor({ form, results, list, api, roomName = () => null, open, cleared = () => {} }) {
    this.#api = api;
    this.#box = form.querySelector('input');
    this.#results = results;
    this.#status = results.querySelector('#search-status');
    this.#retry = results.querySelector('#search-retry');
    this.#hits = results.querySelector('#search-hits');
    this.#more = results.querySelector('#search-more');
    this.#list = list;
    this.#roomName = roomName;
    this.#open = open;
    this.#cleared = cleared;
    this.#box.addEventListener('input', () => this.#typed());
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const q = this.#box.value;
      if (q.trim()) this.#run(q);
    });
    // Escape, in the box or the results, empties the box and brings the list back.
    for (const part of [this.#box, results]) {
      part.addEventListener('keydown', (event) => {
        if (event.key !== 'Escape' || results.hidden) return;
        event.preventDefault();
        this.#box.value = '';
        this.#end();
        this.#box.focus();
      });
    }
    this.#more.addEventListener('click', () => {
      // Not while newer words wait to be searched: the next page would be
      // the old words', shown under the new ones.
      if (this.#next && this.#box.value === this.#q) this.#run(this.#q, this.#next);
    });
  }

  /** The results take the list's place while the box has words; the list comes back after. */
  #showResults(shown) {
    this.#results.hidden = !shown;
    this.#list.hidden = shown;
  }

  #say(text, state) {
    this.#results.dataset.state = state;
    if (this.#status.textContent !== text) this.#status.textContent = text;
  }

  /** The box changed: a search in a moment, the one under way (now stale) cancelled. */
  #typed() {
    const q = this.#box.value;
    clearTimeout(this.#timer);
    this.#controller?.abort();
    this.#controller = null;
    if (!q.trim()) {
      this.#end();
      return;
    }
    this.#showResults(true);
    this.#say('Searching…', 'searching');
    this.#timer = setTimeout(() => this.#run(q), DEBOUNCE);
  }

  /** Searches for `q` (the page after `cursor`'s, added to what shows). */
  async #run(q, cursor = null) {
    clearTimeout(this.#timer);
    this.#controller?.abort();
    const controller = new AbortController();
    this.#controller = controller;
    this.#retry.hidden = true;
    this.#more.disabled = true;
    this.#results.setAttribute('aria-busy', 'true');
    this.#say(cursor ? this.#status.textContent : 'Searching…', 'searching');
    let page;
    try {
      page = await this.#api.search({ q, cursor, limit: PAGE, signal: controller.signal });
    } catch (error) {
      if (this.#controller !== controller) return; // typed over, or ended
      this.#controller = null;
      this.#failed(error, q, cursor);
      return;
    }
    if (this.#controller !== controller) return;
    this.#controller = null;
    this.#results.removeAttribute('aria-busy');
    if (!cursor) {
      this.#groups.clear();
      this.#count = 0;
      this.#hits.replaceChildren();
    }
    this.#q = q;
    this.#next = page.next;
    const moreFocused = document.activeElement === this.#more;
    const added = page.hits.map((hit) => this.#showHit(hit));
    this.#count += added.length;
    this.#more.hidden = !page.next;
    this.#more.disabled = false;
    const count = this.#count === 1 ? '1 message' : `${this.#count} messages`;
    this.#say(this.#count === 0 ? 'No messages match.' : `${count} found${page.next ? ', more to load' : ''}.`, 'done');
    // Load more pressed: the focus goes on to the first of the new hits.
    if (moreFocused && (added.length > 0 || !page.next)) (added[0] ?? this.#box).focus();
  }

  /** Says why a search found nothing; a refusal of too many is retried when the server says. */
  #failed(error, q, cursor) {
    this.#results.removeAttribute('aria-busy');
    this.#more.disabled = false;
    if (error?.code === 'invalid_query') {
      if (!cursor) this.#hits.replaceChildren();
      this.#say('Type a word to search for.', 'done');
      return;
    }
    if (error?.status === 429) {
      const seconds = error.retryAfter ?? 1;
      this.#say(`Too many searches: trying again in ${seconds} s.`, 'waiting');
      this.#timer = setTimeout(() => this.#run(q, cursor), seconds * 1000);
      return;
    }
    const why = error?.status ? error.message : 'the server could not be reached';
    this.#say(`The search failed: ${why}.`, 'failed');
    this.#retry.hidden = false;
    this.#retry.onclick = () => this.#run(q, cursor);
  }

  /** A hit under its conversation's heading (made for its first hit): its button. */
  #showHit({ message, roomName, snippet }) {
    let group = this.#groups.get(message.roomId);
    if (!group) {
      const item = document.createElement('li');
      item.className = 'search-group';
      item.dataset.roomId = message.roomId;
      const heading = document.createElement('h3');
      heading.id = `search-group-${this.#groups.size + 1}`;
      heading.textContent = roomName || this.#roomName(message.roomId) || 'Conversation';
      const list = document.createElement('ul');
      list.className = 'hits';
      list.setAttribute('aria-labelledby', heading.id);
      item.append(heading, list);
      this.#hits.append(item);
      group = { item, list, name: heading.textContent };
      this.#groups.set(message.roomId, group);
    }
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'hit';
    button.dataset.roomId = message.roomId;
    button.dataset.messageId = message.id;
    button.dataset.seq = String(message.seq);
    const meta = span('meta');
    meta.textContent = `${message.authorId} · ${formatDateTime(message.createdAt)}`;
    // Text nodes only: a body may hold markup, and it shows as the text it is.
    const text = span('snippet');
    for (const part of snippet?.length ? snippet : [{ text: message.body, match: false }]) {
      if (!part.match) {
        text.append(document.createTextNode(part.text));
        continue;
      }
      const mark = document.createElement('mark');
      mark.textContent = part.text;
      text.append(mark);
    }
    button.append(meta, text);
    button.addEventListener('click', () => {
      for (const other of this.#hits.querySelectorAll('.hit')) other.setAttribute('aria-current', String(other === button));
      this.#open(message.roomId, message.seq, group.name);
    });
    const item = document.createElement('li');
    item.append(button);
    group.list.append(item);
    return button;
  }

  /** Back to the list: the box emptied, nothing under way, and `cleared()` told. */
  #end() {
    clearTimeout(this.#timer);
    this.#controller?.abort();
    this.#q = '';
    this.#controller = null;
    this.#timer = null;
    this.#next = null;
    this.#count = 0;
    this.#groups.clear();
    this.#hits.replaceChildren();
    this.#results.removeAttribute('aria-busy');
    this.#say('', 'idle');
    this.#more.hidden = true;
    this.#retry.hidden = true;
    this.#showResults(false);
    this.#cleared();
  }
}
