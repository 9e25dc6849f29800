// Creates COUNT pending CIBA requests through the public /backchannel endpoint and writes their
// auth_req_ids to OUT, one a line. The default in-memory adapter can't be filled from outside,
// so the pool for the pending-poll scenario is made the way a client would make it.
//
// usage: node seed.mjs ISSUER COUNT OUT
// env:   CLIENT_ID, CLIENT_SECRET, LOGIN_HINT (same defaults as server.mjs)

import { writeFile } from 'node:fs/promises';
import process from 'node:process';

const [issuer, countArg, out] = process.argv.slice(2);
const count = Number.parseInt(countArg ?? '', 10);
if (!issuer || !out || !(count > 0)) {
  console.error('usage: node seed.mjs ISSUER COUNT OUT');
  process.exit(2);
}

const clientId = process.env.CLIENT_ID ?? 'bench-client';
const clientSecret = process.env.CLIENT_SECRET ?? 'bench-secret-0123456789abcdef';
const loginHint = process.env.LOGIN_HINT ?? 'alice@example.com';
const authorization = `Basic ${Buffer.from(
  `${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`,
).toString('base64')}`;

const body = new URLSearchParams({ scope: 'openid', login_hint: loginHint }).toString();
const ids = new Array(count);
let next = 0;

async function worker() {
  while (next < count) {
    const slot = next;
    next += 1;
    const response = await fetch(`${issuer}/backchannel`, {
      method: 'POST',
      headers: {
        authorization,
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body,
    });
    const text = await response.text();
    if (response.status !== 200) {
      throw new Error(`bc-authorize answered ${response.status}: ${text}`);
    }
    const { auth_req_id: id } = JSON.parse(text);
    if (typeof id !== 'string' || !/^[A-Za-z0-9_-]+$/.test(id)) {
      throw new Error(`unexpected auth_req_id in ${text}`);
    }
    ids[slot] = id;
  }
}

await Promise.all(Array.from({ length: 8 }, worker));
await writeFile(out, `${ids.join('\n')}\n`);
