// Development sign-in for the pages: a token for any name from the server's
// dev-only endpoint (absent in production), kept for this tab. Timings may be
// overridden from the query string (?heartbeatTimeout=1000&backoffInitial=100…).

// Everything that would reach the console as an error is also kept here, so
// tests (and curious people) can see it: window.chatErrors.
window.chatErrors = [];
const keep = (text) => window.chatErrors.push(String(text));
window.addEventListener('error', (event) => keep(event.message));
window.addEventListener('unhandledrejection', (event) => keep(event.reason?.stack ?? event.reason));
document.addEventListener('securitypolicyviolation', (event) => keep(`CSP: ${event.violatedDirective}`));
const consoleError = console.error.bind(console);
console.error = (...args) => {
  keep(args.join(' '));
  consoleError(...args);
};

const TIMINGS = [
  'heartbeatTimeout', 'backoffInitial', 'backoffMax', 'maxAttempts',
  'pollInterval', 'streamRetryInterval', 'pauseWhenHiddenAfter',
];

export function timingOverrides(search = location.search) {
  const params = new URLSearchParams(search);
  const options = {};
  for (const name of TIMINGS) {
    const value = Number(params.get(name));
    if (params.has(name) && Number.isFinite(value) && value >= 0) options[name] = value;
  }
  if (params.get('shareAcrossTabs') === 'false') options.shareAcrossTabs = false;
  return options;
}

function askForName(role) {
  const form = document.getElementById('signin');
  const input = form.querySelector('input[name=user]');
  form.hidden = false;
  input.focus();
  return new Promise((resolve) => {
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const name = input.value.trim();
      if (!name) return;
      form.hidden = true;
      resolve({ user: name, role: form.querySelector('[name=role]')?.value ?? role });
    });
  });
}

/** Who this tab is, and a `getToken` for the client. */
export async function signIn(defaultRole) {
  const params = new URLSearchParams(location.search);
  let user = params.get('user') ?? sessionStorage.getItem('chat.user');
  let role = params.get('role') ?? sessionStorage.getItem('chat.role') ?? defaultRole;
  if (!user) ({ user, role } = await askForName(defaultRole));
  sessionStorage.setItem('chat.user', user);
  sessionStorage.setItem('chat.role', role);
  let token = null;
  let expiresAt = 0;
  const getToken = async ({ forceRefresh } = { forceRefresh: false }) => {
    if (!forceRefresh && token && Date.now() < expiresAt - 60_000) return token;
    const response = await fetch('/api/dev/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ sub: user, role }),
    });
    if (!response.ok) throw new Error(`sign-in failed (${response.status}): is the server in development mode?`);
    const answer = await response.json();
    token = answer.token;
    expiresAt = Date.now() + answer.expiresIn * 1000;
    return token;
  };
  return { user, role, getToken };
}

export function showStatus(element, status) {
  element.textContent = status;
  element.dataset.status = status;
}

export function formatTime(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
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
    if (Number(node.dataset.seq) < message.seq) break;
    next = node;
  }
  list.insertBefore(item, next);
  if (!next) list.scrollTop = list.scrollHeight;
  return true;
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
