// Independent mTLS client (RFC 8705): openid-client (v6) authenticates with TlsClientAuth()
// (tls_client_auth or self_signed_tls_client_auth: the OP decides by the registration), presenting
// its certificate through a custom fetch, gets certificate-bound tokens in poll or ping mode, then
// calls userinfo with the same certificate (must succeed) and with another one (must be refused).
//
// Environment: CIBA_ISSUER, CIBA_CLIENT_ID, CIBA_LOGIN_HINT, CIBA_CA_FILE (the test CA, PEM),
// CIBA_CLIENT_CERT / CIBA_CLIENT_KEY (the client's certificate), CIBA_OTHER_CERT / CIBA_OTHER_KEY
// (another certificate), CIBA_MODE (poll | ping), for ping CIBA_RECEIVER_CERT / _KEY / _PORT;
// CIBA_SCOPE, CIBA_BINDING_MESSAGE, CIBA_TIMEOUT_SECONDS (optional).
//
// Prints one JSON object per line on stdout: initiated, ping (ping mode), tokens,
// {"event": "userinfo", "sub": ...}, {"event": "userinfo_other_certificate", "refused": ...},
// {"event": "http", "requests": [...]}. On failure {"event": "error", ...} and exit status 1.
import { TlsClientAuth, customFetch, fetchUserInfo } from 'openid-client'

import { emit, required, run } from './common.mjs'
import { cibaFlow, connectTls, refusal, tlsFetch, tlsMaterial } from './sender-constrained.mjs'

async function main() {
  const log = []
  const own = tlsFetch(tlsMaterial('CIBA_CLIENT_CERT', 'CIBA_CLIENT_KEY'), log)
  const other = tlsFetch(tlsMaterial('CIBA_OTHER_CERT', 'CIBA_OTHER_KEY'), log)
  try {
    const { config, metadata } = await connectTls(
      required('CIBA_ISSUER'),
      required('CIBA_CLIENT_ID'),
      { tls_client_certificate_bound_access_tokens: true },
      TlsClientAuth(),
      own,
    )
    const tokens = await cibaFlow(config, metadata, {})
    const sub = tokens.claims().sub

    const userinfo = await fetchUserInfo(config, tokens.access_token, sub)
    emit({ event: 'userinfo', sub: userinfo.sub })

    // RFC 8705 §3: the token is bound to the certificate; another client's is refused.
    config[customFetch] = other
    try {
      await fetchUserInfo(config, tokens.access_token, sub)
      emit({ event: 'userinfo_other_certificate', refused: null })
    } catch (error) {
      emit({ event: 'userinfo_other_certificate', refused: refusal(error) })
    }
  } finally {
    emit({ event: 'http', requests: log })
  }
}

run(main)
