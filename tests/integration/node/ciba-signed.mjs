// Independent CIBA poll-mode client with a signed authentication request and private_key_jwt:
// openid-client (v6) against a django-ciba OP, configured from discovery only.
//
// Environment: CIBA_ISSUER, CIBA_CLIENT_ID, CIBA_PRIVATE_JWK (the client's private signing key as a
// JWK, RSA for PS256), CIBA_LOGIN_HINT, CIBA_BINDING_MESSAGE (optional), CIBA_SCOPE (optional),
// CIBA_TIMEOUT_SECONDS (optional).
//
// The client authenticates at both endpoints with private_key_jwt (PrivateKeyJwt) and sends the
// authentication request as a signed Request Object issued by openid-client itself
// (buildAuthorizationUrlWithJAR: aud = issuer, iss = client_id, exp/iat/nbf/jti set, typ
// oauth-authz-req+jwt). Prints the same events as ciba-poll.mjs.
import {
  PrivateKeyJwt,
  allowInsecureRequests,
  buildAuthorizationUrlWithJAR,
  discovery,
  enableNonRepudiationChecks,
} from 'openid-client'

import { importSigningKey, initiateAndPoll, required, run } from './common.mjs'

async function main() {
  const issuer = required('CIBA_ISSUER')
  const clientId = required('CIBA_CLIENT_ID')
  const privateJwk = JSON.parse(required('CIBA_PRIVATE_JWK'))
  const loginHint = required('CIBA_LOGIN_HINT')
  const scope = process.env.CIBA_SCOPE || 'openid profile offline_access'
  const bindingMessage = process.env.CIBA_BINDING_MESSAGE || 'Signed check'
  const timeoutSeconds = Number(process.env.CIBA_TIMEOUT_SECONDS || 40)

  const signingKey = await importSigningKey(privateJwk)
  const config = await discovery(new URL(issuer), clientId, undefined, PrivateKeyJwt(signingKey), {
    execute: [allowInsecureRequests],
    timeout: 10,
  })
  enableNonRepudiationChecks(config)
  const metadata = config.serverMetadata()
  for (const member of [
    'backchannel_authentication_endpoint',
    'backchannel_authentication_request_signing_alg_values_supported',
  ]) {
    if (!metadata[member]) {
      throw new Error(`discovery has no ${member}`)
    }
  }
  if (!metadata.token_endpoint_auth_methods_supported?.includes('private_key_jwt')) {
    throw new Error('discovery does not list private_key_jwt')
  }
  if (!metadata.backchannel_authentication_request_signing_alg_values_supported.includes('PS256')) {
    throw new Error('discovery does not list PS256 for signed authentication requests')
  }

  // The Request Object carries every authentication request parameter; only `request` (and the
  // client authentication) go in the form.
  const jar = await buildAuthorizationUrlWithJAR(
    config,
    { scope, login_hint: loginHint, binding_message: bindingMessage },
    signingKey,
  )
  const request = jar.searchParams.get('request')
  await initiateAndPoll(config, metadata, { request }, timeoutSeconds)
}

run(main)
