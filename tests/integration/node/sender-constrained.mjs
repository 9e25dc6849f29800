// Shared by the sender-constrained token checks (ciba-mtls.mjs, ciba-dpop.mjs): a Fetch API
// implementation on node:https that presents a client certificate (RFC 8705) and trusts the test
// CA, a log of every HTTP exchange, discovery over TLS, and the CIBA flow in poll or ping mode.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { request } from 'node:https'

import {
  customFetch,
  discovery,
  enableNonRepudiationChecks,
  genericGrantRequest,
  initiateBackchannelAuthentication,
  pollBackchannelAuthenticationGrant,
} from 'openid-client'

import { emit, required, tokensEvent } from './common.mjs'
import { startReceiver } from './notification-receiver.mjs'

export const CIBA_GRANT_TYPE = 'urn:openid:params:grant-type:ciba'

// PEM files named by environment variables (the certificate and key may be absent: no mTLS).
export function tlsMaterial(certVariable, keyVariable) {
  const ca = readFileSync(required('CIBA_CA_FILE'))
  const certFile = certVariable && process.env[certVariable]
  const keyFile = keyVariable && process.env[keyVariable]
  return {
    ca,
    cert: certFile ? readFileSync(certFile) : undefined,
    key: keyFile ? readFileSync(keyFile) : undefined,
  }
}

// fetch() over node:https with { ca, cert, key }; every exchange is appended to ``log`` as
// { method, path, status, dpop (a proof was sent), dpop_nonce (the answer carries DPoP-Nonce),
// www_authenticate } (never a token or proof).
export function tlsFetch({ ca, cert, key }, log) {
  return (url, options = {}) =>
    new Promise((resolve, reject) => {
      const target = new URL(url)
      const headers = {}
      new Headers(options.headers ?? {}).forEach((value, name) => {
        headers[name] = value
      })
      let body = options.body
      if (body instanceof URLSearchParams) body = body.toString()
      if (body != null && headers['content-length'] === undefined) {
        headers['content-length'] = String(Buffer.byteLength(body))
      }
      const method = options.method ?? 'GET'
      const outgoing = request(
        target,
        { method, headers, ca, cert, key, signal: options.signal ?? undefined, agent: false },
        (incoming) => {
          const chunks = []
          incoming.on('data', (chunk) => chunks.push(chunk))
          incoming.on('error', reject)
          incoming.on('end', () => {
            const answer = new Headers()
            for (const [name, value] of Object.entries(incoming.headers)) {
              for (const item of [].concat(value ?? [])) answer.append(name, String(item))
            }
            const status = incoming.statusCode
            log?.push({
              method,
              path: target.pathname,
              status,
              dpop: 'dpop' in headers,
              dpop_nonce: answer.has('dpop-nonce'),
              www_authenticate: answer.get('www-authenticate') ?? undefined,
            })
            const empty = [101, 204, 205, 304].includes(status)
            resolve(
              new Response(empty ? null : Buffer.concat(chunks), {
                status,
                statusText: incoming.statusMessage,
                headers: answer,
              }),
            )
          })
        },
      )
      outgoing.on('error', reject)
      outgoing.end(body ?? undefined)
    })
}

// Discovery over TLS with ``fetchImpl``; ID token signatures are verified against the jwks_uri.
export async function connectTls(issuer, clientId, clientMetadata, clientAuth, fetchImpl) {
  const config = await discovery(new URL(issuer), clientId, clientMetadata, clientAuth, {
    [customFetch]: fetchImpl,
    timeout: 10,
  })
  config[customFetch] = fetchImpl
  enableNonRepudiationChecks(config)
  const metadata = config.serverMetadata()
  if (!metadata.backchannel_authentication_endpoint) {
    throw new Error('discovery has no backchannel_authentication_endpoint')
  }
  return { config, metadata }
}

// The CIBA flow: CIBA_MODE poll (openid-client polls) or ping (a notification endpoint of its own
// with the CA-issued server certificate CIBA_RECEIVER_CERT/KEY on CIBA_RECEIVER_PORT, then one
// token request). ``options`` (e.g. { DPoP }) go with every token request. Prints the
// initiated, ping (ping mode) and tokens events; returns the tokens.
export async function cibaFlow(config, metadata, options) {
  const mode = process.env.CIBA_MODE || 'poll'
  const timeoutSeconds = Number(process.env.CIBA_TIMEOUT_SECONDS || 40)
  const parameters = {
    scope: process.env.CIBA_SCOPE || 'openid profile offline_access',
    login_hint: required('CIBA_LOGIN_HINT'),
    binding_message: process.env.CIBA_BINDING_MESSAGE || 'Sender-constrained check',
  }
  if (process.env.CIBA_DPOP_JKT) parameters.dpop_jkt = process.env.CIBA_DPOP_JKT
  let tokens
  if (mode === 'poll') {
    const response = await initiateBackchannelAuthentication(config, parameters)
    emit({ event: 'initiated', auth_req_id: response.auth_req_id, expires_in: response.expires_in })
    tokens = await pollBackchannelAuthenticationGrant(config, response, undefined, {
      ...options,
      signal: AbortSignal.timeout(timeoutSeconds * 1000),
    })
  } else {
    const port = Number(required('CIBA_RECEIVER_PORT'))
    const receiver = startReceiver({
      cert: readFileSync(required('CIBA_RECEIVER_CERT')),
      key: readFileSync(required('CIBA_RECEIVER_KEY')),
      port,
    })
    try {
      await receiver.ready
      const notificationToken = randomBytes(32).toString('base64url')
      const response = await initiateBackchannelAuthentication(config, {
        ...parameters,
        client_notification_token: notificationToken,
      })
      emit({ event: 'initiated', auth_req_id: response.auth_req_id, expires_in: response.expires_in })
      const ping = await receiver.next(0, AbortSignal.timeout(timeoutSeconds * 1000))
      const body = JSON.parse(ping.body)
      emit({
        event: 'ping',
        path: ping.url,
        authorization_ok: ping.headers.authorization === `Bearer ${notificationToken}`,
        auth_req_id_ok: body.auth_req_id === response.auth_req_id,
      })
      tokens = await genericGrantRequest(config, CIBA_GRANT_TYPE, { auth_req_id: response.auth_req_id }, options)
    } finally {
      await receiver.close()
    }
  }
  emit(tokensEvent(tokens, metadata))
  return tokens
}

// What a refused call looked like: HTTP status, the error code (body or WWW-Authenticate).
export function refusal(error) {
  const challenges = Array.isArray(error?.cause) ? error.cause : []
  return {
    name: error?.name,
    code: error?.code,
    status: error?.status ?? error?.response?.status,
    error: error?.error ?? challenges[0]?.parameters?.error,
    schemes: challenges.map((challenge) => challenge.scheme),
  }
}
