// Independent CIBA ping-mode client: openid-client (v6) against a django-ciba OP.
//
// The client runs its own HTTPS notification endpoint (https://127.0.0.1:PORT/cb), sends a fresh
// client_notification_token with its backchannel authentication request, waits for the OP's ping
// (CIBA Core §10.2: POST, application/json, "Authorization: Bearer <token>", body
// {"auth_req_id": ...}), answers 204 and then redeems the auth_req_id at the token endpoint once.
//
// Environment: CIBA_ISSUER, CIBA_CLIENT_ID, CIBA_CLIENT_SECRET, CIBA_LOGIN_HINT,
// CIBA_TLS_CERT, CIBA_TLS_KEY (PEM files of the endpoint's certificate and key),
// CIBA_RECEIVER_PORT, CIBA_BINDING_MESSAGE (optional), CIBA_SCOPE (optional),
// CIBA_TIMEOUT_SECONDS (optional: how long to wait for the ping).
//
// Prints one JSON object per line on stdout:
//   {"event": "listening", "url": ...}
//   {"event": "initiated", "auth_req_id": ..., "expires_in": ..., "interval": ...}
//   {"event": "ping", "authorization_ok": ..., "content_type": ..., "body": {...}, ...}
//   {"event": "tokens", "claims": {...}, "token_type": ..., "scope": ..., ...}
// On failure (including any mismatch in the ping, or a second ping) prints {"event": "error", ...}
// on stdout and exits with status 1.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'

import { genericGrantRequest, initiateBackchannelAuthentication } from 'openid-client'

import { connect, emit, required, run, tokensEvent } from './common.mjs'
import { CALLBACK_PATH, startReceiver } from './notification-receiver.mjs'

const CIBA_GRANT_TYPE = 'urn:openid:params:grant-type:ciba'
// After the tokens arrived, how long a duplicate ping still gets the chance to show up.
const SETTLE_MS = 1000

class CheckFailed extends Error {
  constructor(message, details) {
    super(message)
    this.name = 'CheckFailed'
    this.details = details
  }
}

function mediaType(contentType) {
  return String(contentType ?? '')
    .split(';')[0]
    .trim()
    .toLowerCase()
}

async function main() {
  const issuer = required('CIBA_ISSUER')
  const clientId = required('CIBA_CLIENT_ID')
  const clientSecret = required('CIBA_CLIENT_SECRET')
  const loginHint = required('CIBA_LOGIN_HINT')
  const cert = readFileSync(required('CIBA_TLS_CERT'))
  const key = readFileSync(required('CIBA_TLS_KEY'))
  const port = Number(required('CIBA_RECEIVER_PORT'))
  const scope = process.env.CIBA_SCOPE || 'openid profile offline_access'
  const bindingMessage = process.env.CIBA_BINDING_MESSAGE || 'Node ping check'
  const timeoutSeconds = Number(process.env.CIBA_TIMEOUT_SECONDS || 40)

  const receiver = startReceiver({ cert, key, port })
  try {
    await receiver.ready
    emit({ event: 'listening', url: `https://127.0.0.1:${port}${CALLBACK_PATH}` })
    return await pingFlow(receiver)
  } finally {
    await receiver.close()
  }

  async function pingFlow(receiver) {
    const { config, metadata } = await connect(issuer, clientId, clientSecret)
    if (!(metadata.backchannel_token_delivery_modes_supported ?? []).includes('ping')) {
      throw new Error('discovery does not list ping in backchannel_token_delivery_modes_supported')
    }

    // CIBA Core §7.1: a bearer token for the OP's callback, with at least 128 bits of entropy.
    const notificationToken = randomBytes(32).toString('base64url')
    const response = await initiateBackchannelAuthentication(config, {
      scope,
      login_hint: loginHint,
      binding_message: bindingMessage,
      client_notification_token: notificationToken,
    })
    const authReqId = response.auth_req_id
    emit({
      event: 'initiated',
      auth_req_id: authReqId,
      expires_in: response.expires_in,
      interval: response.interval,
    })

    const ping = await receiver.next(0, AbortSignal.timeout(timeoutSeconds * 1000)).catch((error) => {
      throw new CheckFailed(`no ping arrived within ${timeoutSeconds} s`, { cause: String(error) })
    })
    const contentType = ping.headers['content-type']
    const authorizationOk = ping.headers.authorization === `Bearer ${notificationToken}`
    let body
    try {
      body = JSON.parse(ping.body)
    } catch {
      body = undefined
    }
    emit({
      event: 'ping',
      method: ping.method,
      path: ping.url,
      authorization_ok: authorizationOk,
      content_type: contentType,
      body: body ?? ping.body,
    })
    const problems = []
    if (ping.method !== 'POST') problems.push(`method ${ping.method}, not POST`)
    if (ping.url !== CALLBACK_PATH) problems.push(`path ${ping.url}, not ${CALLBACK_PATH}`)
    if (mediaType(contentType) !== 'application/json') problems.push(`Content-Type ${contentType}`)
    if (!authorizationOk) problems.push('Authorization is not "Bearer <client_notification_token>"')
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      problems.push('the body is not a JSON object')
    } else {
      const members = Object.keys(body)
      if (members.length !== 1 || members[0] !== 'auth_req_id') {
        problems.push(`the body's members are ${JSON.stringify(members)}, not ["auth_req_id"]`)
      }
      if (body.auth_req_id !== authReqId) problems.push("the body's auth_req_id is not the initiated one")
    }
    if (problems.length) {
      throw new CheckFailed('the ping does not match CIBA Core §10.2 (PING-02, PING-03)', { problems })
    }

    // The ping only says "tokens are ready": redeem the auth_req_id once (no polling). The ID
    // token's claims are validated by openid-client, its signature by the non-repudiation check.
    const tokens = await genericGrantRequest(config, CIBA_GRANT_TYPE, { auth_req_id: authReqId })
    emit(tokensEvent(tokens, metadata))

    // One ping per authentication request (PING-01): a second one is an error.
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
    if (receiver.requests.length > 1) {
      throw new CheckFailed('the notification endpoint got more than one request', {
        requests: receiver.requests.slice(1).map((r) => ({ method: r.method, path: r.url, body: r.body })),
      })
    }
  }
}

run(main)
