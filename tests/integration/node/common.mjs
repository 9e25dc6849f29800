// Shared by the independent-client checks (ciba-poll.mjs, ciba-ping.mjs, ciba-signed.mjs,
// ciba-rar.mjs): environment, output, discovery, signing keys, and the JSON events printed on
// stdout (one object per line).
import {
  ClientSecretBasic,
  allowInsecureRequests,
  discovery,
  enableNonRepudiationChecks,
  initiateBackchannelAuthentication,
  pollBackchannelAuthenticationGrant,
} from 'openid-client'

export function required(name) {
  const value = process.env[name]
  if (!value) {
    throw new Error(`${name} is not set`)
  }
  return value
}

export function emit(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`)
}

// The client's private signing key (an RSA JWK, for PS256) for PrivateKeyJwt and signed requests.
export async function importSigningKey(jwk) {
  const key = await crypto.subtle.importKey('jwk', jwk, { name: 'RSA-PSS', hash: 'SHA-256' }, false, ['sign'])
  return { key, kid: jwk.kid }
}

// Discovery only: every endpoint and the JWKS come from the OP's metadata. The OP is plain http on
// loopback, hence allowInsecureRequests (which also covers the discovery request). ID token
// signatures are verified against the OP's jwks_uri (enableNonRepudiationChecks). With
// CIBA_ID_TOKEN_ALG set, the client is configured with that id_token_signed_response_alg, so
// openid-client refuses an ID token signed with any other algorithm.
export async function connect(issuer, clientId, clientSecret) {
  const idTokenAlg = process.env.CIBA_ID_TOKEN_ALG
  const clientMetadata = idTokenAlg ? { id_token_signed_response_alg: idTokenAlg } : undefined
  const config = await discovery(new URL(issuer), clientId, clientMetadata, ClientSecretBasic(clientSecret), {
    execute: [allowInsecureRequests],
    timeout: 10,
  })
  enableNonRepudiationChecks(config)
  const metadata = config.serverMetadata()
  if (!metadata.backchannel_authentication_endpoint) {
    throw new Error('discovery has no backchannel_authentication_endpoint')
  }
  return { config, metadata }
}

// Send the backchannel authentication request, print {"event": "initiated", ...}, poll the token
// endpoint on openid-client's own schedule and print the tokens event.
export async function initiateAndPoll(config, metadata, parameters, timeoutSeconds) {
  const response = await initiateBackchannelAuthentication(config, parameters)
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

export function tokensEvent(tokens, metadata) {
  const header = JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url').toString('utf8'))
  return {
    event: 'tokens',
    claims: tokens.claims(),
    id_token_alg: header.alg,
    id_token_kid: header.kid,
    token_type: tokens.token_type,
    scope: tokens.scope,
    expires_in: tokens.expires_in,
    has_access_token: typeof tokens.access_token === 'string' && tokens.access_token.length > 0,
    has_refresh_token: typeof tokens.refresh_token === 'string' && tokens.refresh_token.length > 0,
    issuer: metadata.issuer,
  }
}

// Run main(); on failure print {"event": "error", ...} and exit with status 1.
export function run(main) {
  main().then(
    () => process.exit(0),
    (error) => {
      emit({
        event: 'error',
        name: error?.name,
        code: error?.code,
        message: String(error?.message ?? error),
        details: error?.details,
        error: error?.error,
        error_description: error?.error_description,
        cause: error?.cause ? String(error.cause?.message ?? error.cause) : undefined,
      })
      process.exit(1)
    },
  )
}
