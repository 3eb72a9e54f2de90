// What both pages share: the development sign-in (a token for any name from
// the server's dev-only endpoint, absent in production, kept for this tab),
// timing overrides from the query string (?heartbeatTimeout=1000&…, for
// tests), and the status pill.

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
  'heartbeatTimeout', 'connectTimeout', 'backoffInitial', 'backoffMax', 'maxAttempts',
  'pollWait', 'pollInterval', 'streamRetryInterval', 'pauseWhenHiddenAfter', 'sendTimeout', 'sendAttempts',
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
  // A name in the address is a sign-in of its own: its role is the address's
  // or the page's, never one this tab kept from another page.
  let user = params.get('user') ?? sessionStorage.getItem('chat.user');
  let role = params.has('user')
    ? params.get('role') ?? defaultRole
    : sessionStorage.getItem('chat.role') ?? defaultRole;
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

/** The status pill: the status, and when a retry is waited for, when. */
export function showStatus(element, { status, retryIn }) {
  const retrying = retryIn !== undefined && status !== 'live';
  element.textContent = retrying
    ? `${status} · retrying in ${Math.max(1, Math.round(retryIn / 1000))} s`
    : status;
  element.dataset.status = status;
  if (retrying) element.dataset.retrying = 'true';
  else delete element.dataset.retrying;
}
