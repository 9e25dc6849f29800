// Independent CIBA poll-mode client: openid-client (v6) against a django-ciba OP.
//
// Environment: CIBA_ISSUER, CIBA_CLIENT_ID, CIBA_CLIENT_SECRET, CIBA_LOGIN_HINT,
// CIBA_BINDING_MESSAGE (optional), CIBA_SCOPE (optional), CIBA_TIMEOUT_SECONDS (optional).
//
// Prints one JSON object per line on stdout:
//   {"event": "initiated", "auth_req_id": ..., "expires_in": ..., "interval": ...}
//   {"event": "tokens", "claims": {...}, "token_type": ..., "scope": ..., ...}
// On failure prints {"event": "error", ...} on stdout and exits with status 1.
import { connect, initiateAndPoll, required, run } from './common.mjs'

async function main() {
  const issuer = required('CIBA_ISSUER')
  const clientId = required('CIBA_CLIENT_ID')
  const clientSecret = required('CIBA_CLIENT_SECRET')
  const loginHint = required('CIBA_LOGIN_HINT')
  const scope = process.env.CIBA_SCOPE || 'openid profile offline_access'
  const bindingMessage = process.env.CIBA_BINDING_MESSAGE || 'Node check'
  const timeoutSeconds = Number(process.env.CIBA_TIMEOUT_SECONDS || 40)

  const { config, metadata } = await connect(issuer, clientId, clientSecret)

  await initiateAndPoll(
    config,
    metadata,
    { scope, login_hint: loginHint, binding_message: bindingMessage },
    timeoutSeconds,
  )
}

run(main)
