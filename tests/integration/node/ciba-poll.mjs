// Independent CIBA poll-mode client: openid-client (v6) against a django-ciba OP.
//
// Environment: CIBA_ISSUER, CIBA_CLIENT_ID, CIBA_CLIENT_SECRET, CIBA_LOGIN_HINT,
// CIBA_BINDING_MESSAGE (optional), CIBA_SCOPE (optional), CIBA_TIMEOUT_SECONDS (optional).
//
// Prints one JSON object per line on stdout:
//   {"event": "initiated", "auth_req_id": ..., "expires_in": ..., "interval": ...}
//   {"event": "tokens", "claims": {...}, "token_type": ..., "scope": ..., ...}
// On failure prints {"event": "error", ...} on stdout and exits with status 1.
import {
  ClientSecretBasic,
  allowInsecureRequests,
  discovery,
  enableNonRepudiationChecks,
  initiateBackchannelAuthentication,
  pollBackchannelAuthenticationGrant,
} from 'openid-client'

function required(name) {
  const value = process.env[name]
  if (!value) {
    throw new Error(`${name} is not set`)
  }
  return value
}

function emit(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`)
}

async function main() {
  const issuer = required('CIBA_ISSUER')
  const clientId = required('CIBA_CLIENT_ID')
  const clientSecret = required('CIBA_CLIENT_SECRET')
  const loginHint = required('CIBA_LOGIN_HINT')
  const scope = process.env.CIBA_SCOPE || 'openid profile offline_access'
  const bindingMessage = process.env.CIBA_BINDING_MESSAGE || 'Node check'
  const timeoutSeconds = Number(process.env.CIBA_TIMEOUT_SECONDS || 40)

  // Discovery only: every endpoint and the JWKS come from the OP's metadata. The OP is plain
  // http on loopback, hence allowInsecureRequests (which also covers the discovery request).
  const config = await discovery(new URL(issuer), clientId, undefined, ClientSecretBasic(clientSecret), {
    execute: [allowInsecureRequests],
    timeout: 10,
  })
  // Verify the ID token's signature against the OP's jwks_uri.
  enableNonRepudiationChecks(config)

  const metadata = config.serverMetadata()
  if (!metadata.backchannel_authentication_endpoint) {
    throw new Error('discovery has no backchannel_authentication_endpoint')
  }

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
  emit({
    event: 'tokens',
    claims: tokens.claims(),
    token_type: tokens.token_type,
    scope: tokens.scope,
    expires_in: tokens.expires_in,
    has_access_token: typeof tokens.access_token === 'string' && tokens.access_token.length > 0,
    has_refresh_token: typeof tokens.refresh_token === 'string' && tokens.refresh_token.length > 0,
    issuer: metadata.issuer,
  })
}

main().then(
  () => process.exit(0),
  (error) => {
    emit({
      event: 'error',
      name: error?.name,
      code: error?.code,
      message: String(error?.message ?? error),
      error: error?.error,
      error_description: error?.error_description,
      cause: error?.cause ? String(error.cause?.message ?? error.cause) : undefined,
    })
    process.exit(1)
  },
)
