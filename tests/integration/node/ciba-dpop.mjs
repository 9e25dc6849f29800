// Independent DPoP client (RFC 9449): openid-client (v6) with a DPoP handle (getDPoPHandle, an
// ES256 key of its own) gets DPoP-bound tokens in poll or ping mode, then calls userinfo with the
// handle (must succeed) and with the token as a plain Bearer token without proof (must be
// refused). When the OP demands nonces (use_dpop_nonce, RFC 9449 §8, §9) openid-client retries
// with the DPoP-Nonce it was given: the "http" event shows those exchanges.
//
// Environment: CIBA_ISSUER, CIBA_CLIENT_ID, CIBA_CLIENT_SECRET, CIBA_LOGIN_HINT, CIBA_CA_FILE,
// CIBA_MODE (poll | ping), for ping CIBA_RECEIVER_CERT / _KEY / _PORT; CIBA_SCOPE,
// CIBA_BINDING_MESSAGE, CIBA_TIMEOUT_SECONDS (optional).
//
// Prints one JSON object per line on stdout: initiated, ping (ping mode), tokens,
// {"event": "dpop_key", "jkt": ...}, {"event": "userinfo", "sub": ...},
// {"event": "userinfo_bearer", "refused": ...}, {"event": "http", "requests": [...]}.
// On failure {"event": "error", ...} and exit status 1.
import { ClientSecretBasic, fetchUserInfo, getDPoPHandle, randomDPoPKeyPair } from 'openid-client'

import { emit, required, run } from './common.mjs'
import { cibaFlow, connectTls, refusal, tlsFetch, tlsMaterial } from './sender-constrained.mjs'

async function main() {
  const log = []
  const fetchImpl = tlsFetch(tlsMaterial(), log) // trusts the test CA; no client certificate
  try {
    const { config, metadata } = await connectTls(
      required('CIBA_ISSUER'),
      required('CIBA_CLIENT_ID'),
      { dpop_bound_access_tokens: true },
      ClientSecretBasic(required('CIBA_CLIENT_SECRET')),
      fetchImpl,
    )
    const keyPair = await randomDPoPKeyPair('ES256')
    const DPoP = getDPoPHandle(config, keyPair)
    const publicJwk = await crypto.subtle.exportKey('jwk', keyPair.publicKey)
    emit({ event: 'dpop_key', jwk: { kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x, y: publicJwk.y } })

    const tokens = await cibaFlow(config, metadata, { DPoP })
    const sub = tokens.claims().sub

    const userinfo = await fetchUserInfo(config, tokens.access_token, sub, { DPoP })
    emit({ event: 'userinfo', sub: userinfo.sub })

    // RFC 9449 §7.1: a DPoP-bound token without a proof (sent as Bearer) is refused.
    try {
      await fetchUserInfo(config, tokens.access_token, sub)
      emit({ event: 'userinfo_bearer', refused: null })
    } catch (error) {
      emit({ event: 'userinfo_bearer', refused: refusal(error) })
    }
  } finally {
    emit({ event: 'http', requests: log })
  }
}

run(main)
