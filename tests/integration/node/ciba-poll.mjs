// Independent CIBA poll-mode client: openid-client (v6) against a django-ciba OP.
//
// Environment: CIBA_ISSUER, CIBA_CLIENT_ID, CIBA_CLIENT_SECRET, CIBA_LOGIN_HINT,
// CIBA_BINDING_MESSAGE (optional), CIBA_SCOPE (optional), CIBA_TIMEOUT_SECONDS (optional).
//
// Prints one JSON object per line on stdout:
//   {"event": "initiated", "auth_req_id": ..., "expires_in": ..., "interval": ...}
//   {"event": "tokens", "claims": {...}, "token_type": ..., "scope": ..., ...}
// On failure prints {"event": "error", ...} on stdout and exits with status 1.
import { initiateBackchannelAuthentication, pollBackchannelAuthenticationGrant } from 'openid-client'

import { connect, emit, required, run, tokensEvent } from './common.mjs'

async function main() {
  const issuer = required('CIBA_ISSUER')
  const clientId = required('CIBA_CLIENT_ID')
  const clientSecret = required('CIBA_CLIENT_SECRET')
  const loginHint = required('CIBA_LOGIN_HINT')
  const scope = process.env.CIBA_SCOPE || 'openid profile offline_access'
  const bindingMessage = process.env.CIBA_BINDING_MESSAGE || 'Node check'
  const timeoutSeconds = Number(process.env.CIBA_TIMEOUT_SECONDS || 40)

  const { config, metadata } = await connect(issuer, clientId, clientSecret)

  const response = await initiateBackchannelAuthentication(config, {
    scope,
    login_hint: loginHint,
    binding_message: bindingMessage,
  })
  emit({
    event: 'initiated',
    auth_req_id: response.auth_req_id,
    expires_in: response.expires_in,
    interval: response.interval,
  })

  const tokens = await pollBackchannelAuthenticationGrant(config, response, undefined, {
    signal: AbortSignal.timeout(timeoutSeconds * 1000),
  })
  emit(tokensEvent(tokens, metadata))
}

run(main)
