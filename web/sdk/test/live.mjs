// For the tests against a real chat-server process (CHAT_SERVER_URL; `cargo
// test` starts one and sets it): where it is, and its development tokens.
import assert from 'node:assert/strict';

export const SERVER = process.env.CHAT_SERVER_URL;
export const skip = SERVER ? false : 'CHAT_SERVER_URL is not set (cargo test sets it)';

/** A development token for `sub`, from the server's dev-only endpoint. */
export async function token(sub, role = 'user') {
  const response = await fetch(`${SERVER}/api/dev/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ sub, role }),
  });
  assert.equal(response.status, 200);
  return (await response.json()).token;
}

/** `name` with a suffix no other test run shares. */
export const unique = (name) => `${name}-${Math.random().toString(36).slice(2, 8)}`;
