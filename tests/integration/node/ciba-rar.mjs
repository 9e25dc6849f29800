// Independent CIBA poll-mode client with rich authorization requests (RFC 9396): openid-client (v6)
// sends authorization_details at bc-authorize and reads the granted ones back from the token
// response, from a refresh (optionally narrowed) and from introspection.
//
// With CIBA_PRIVATE_JWK (the client's private PS256 key as a JWK) instead of CIBA_CLIENT_SECRET, the
// client authenticates with private_key_jwt and sends the request as a signed Request Object built
// by openid-client (buildAuthorizationUrlWithJAR), which carries authorization_details as a JSON
// array claim.
//
// Environment: CIBA_ISSUER, CIBA_CLIENT_ID, CIBA_CLIENT_SECRET or CIBA_PRIVATE_JWK, CIBA_LOGIN_HINT,
// CIBA_AUTHORIZATION_DETAILS (a JSON array), CIBA_REFRESH_DETAILS (optional JSON array: the details
// the refresh asks for), CIBA_RS_CLIENT_ID and CIBA_RS_CLIENT_SECRET (a resource server that
// introspects), CIBA_BINDING_MESSAGE, CIBA_SCOPE, CIBA_TIMEOUT_SECONDS (optional).
//
// Prints one JSON object per line on stdout:
//   {"event": "initiated", "auth_req_id": ..., "types_supported": [...], ...}
//   {"event": "tokens", ..., "authorization_details": [...]}
//   {"event": "refreshed", "authorization_details": [...], "introspected": {...}, ...}
// On failure prints {"event": "error", ...} on stdout and exits with status 1.
import {
  ClientSecretBasic,
  Configuration,
  PrivateKeyJwt,
  allowInsecureRequests,
  buildAuthorizationUrlWithJAR,
  discovery,
  enableNonRepudiationChecks,
  initiateBackchannelAuthentication,
  pollBackchannelAuthenticationGrant,
  refreshTokenGrant,
  tokenIntrospection,
} from 'openid-client'

import { connect, emit, importSigningKey, required, run, tokensEvent } from './common.mjs'

async function main() {
  const issuer = required('CIBA_ISSUER')
  const clientId = required('CIBA_CLIENT_ID')
  const privateJwk = process.env.CIBA_PRIVATE_JWK
  const loginHint = required('CIBA_LOGIN_HINT')
  const details = required('CIBA_AUTHORIZATION_DETAILS')
  const refreshDetails = process.env.CIBA_REFRESH_DETAILS
  const rsClientId = required('CIBA_RS_CLIENT_ID')
  const rsClientSecret = required('CIBA_RS_CLIENT_SECRET')
  const scope = process.env.CIBA_SCOPE || 'openid offline_access'
  const bindingMessage = process.env.CIBA_BINDING_MESSAGE || 'RAR check'
  const timeoutSeconds = Number(process.env.CIBA_TIMEOUT_SECONDS || 40)

  const parameters = {
    scope,
    login_hint: loginHint,
    binding_message: bindingMessage,
    authorization_details: details,
  }
  let config, metadata, response
  if (privateJwk) {
    const signingKey = await importSigningKey(JSON.parse(privateJwk))
    config = await discovery(new URL(issuer), clientId, undefined, PrivateKeyJwt(signingKey), {
      execute: [allowInsecureRequests],
      timeout: 10,
    })
    enableNonRepudiationChecks(config)
    metadata = config.serverMetadata()
    // Every parameter inside the Request Object; authorization_details becomes an array claim.
    const jar = await buildAuthorizationUrlWithJAR(config, parameters, signingKey)
    response = await initiateBackchannelAuthentication(config, { request: jar.searchParams.get('request') })
  } else {
    ;({ config, metadata } = await connect(issuer, clientId, required('CIBA_CLIENT_SECRET')))
    // RFC 9396 §3: the parameter is a JSON string in the form.
    response = await initiateBackchannelAuthentication(config, parameters)
  }
  emit({
    event: 'initiated',
    auth_req_id: response.auth_req_id,
    expires_in: response.expires_in,
    interval: response.interval,
    types_supported: metadata.authorization_details_types_supported ?? null,
  })
  const tokens = await pollBackchannelAuthenticationGrant(config, response, undefined, {
    signal: AbortSignal.timeout(timeoutSeconds * 1000),
  })
  emit({ ...tokensEvent(tokens, metadata), authorization_details: tokens.authorization_details ?? null })

  // A resource server introspects the access tokens (RFC 7662, RFC 9396 §9.2); the first one before
  // the refresh, which revokes it. Discovery does not publish introspection_endpoint, so the
  // resource server is configured with the OP's metadata plus the endpoint's address.
  const resourceServer = new Configuration(
    { ...metadata, introspection_endpoint: `${metadata.issuer}/introspect/` },
    rsClientId,
    undefined,
    ClientSecretBasic(rsClientSecret),
  )
  allowInsecureRequests(resourceServer)
  const introspect = async (token) => {
    const answer = await tokenIntrospection(resourceServer, token)
    return { active: answer.active, authorization_details: answer.authorization_details ?? null }
  }
  const introspected = await introspect(tokens.access_token)

  // A refresh: the whole grant, or the part asked for (RFC 9396 §6, §6.1).
  const refreshed = await refreshTokenGrant(
    config,
    tokens.refresh_token,
    refreshDetails ? { authorization_details: refreshDetails } : undefined,
  )
  emit({
    event: 'refreshed',
    authorization_details: refreshed.authorization_details ?? null,
    has_access_token: typeof refreshed.access_token === 'string' && refreshed.access_token.length > 0,
    introspected,
    introspected_refreshed: await introspect(refreshed.access_token),
  })
}

run(main)
