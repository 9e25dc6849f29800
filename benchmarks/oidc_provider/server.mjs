// node-oidc-provider configured as a CIBA (poll mode) OP, for the side-by-side benchmark in ./run.
//
// Environment:
//   PORT            port on 127.0.0.1 (default 3000); the issuer is http://127.0.0.1:PORT
//   BENCH_WORKERS   1 (default) = one process; N > 1 = node:cluster with N workers. The default
//                   in-memory adapter is per process, so with N > 1 an auth_req_id issued by one
//                   worker is unknown to the others: only stateless-per-request scenarios
//                   (bc-authorize, client_credentials) make sense there.
//   CLIENT_ID, CLIENT_SECRET, LOGIN_HINT, ACCOUNT_ID   fixture values (defaults below)
//
// Prints "ready <issuer>" on stdout once every worker listens.

import cluster from 'node:cluster';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import process from 'node:process';

const PORT = Number.parseInt(process.env.PORT ?? '3000', 10);
const HOST = '127.0.0.1';
const ISSUER = `http://${HOST}:${PORT}`;
const WORKERS = Math.max(1, Number.parseInt(process.env.BENCH_WORKERS ?? '1', 10) || 1);

const CLIENT_ID = process.env.CLIENT_ID ?? 'bench-client';
const CLIENT_SECRET = process.env.CLIENT_SECRET ?? 'bench-secret-0123456789abcdef';
const LOGIN_HINT = process.env.LOGIN_HINT ?? 'alice@example.com';
const ACCOUNT_ID = process.env.ACCOUNT_ID ?? 'user-1';

if (WORKERS > 1 && cluster.isPrimary) {
  let listening = 0;
  cluster.on('listening', () => {
    listening += 1;
    if (listening === WORKERS) console.log(`ready ${ISSUER} workers=${WORKERS}`);
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!shuttingDown) {
      console.error(`worker ${worker.process.pid} exited (code ${code}, signal ${signal})`);
      shutdown(1);
    }
  });
  let shuttingDown = false;
  const shutdown = (code = 0) => {
    shuttingDown = true;
    for (const worker of Object.values(cluster.workers)) worker.kill('SIGTERM');
    setTimeout(() => process.exit(code), 2000).unref();
  };
  process.on('SIGTERM', () => shutdown(0));
  process.on('SIGINT', () => shutdown(0));
  for (let i = 0; i < WORKERS; i += 1) cluster.fork();
} else {
  await serve();
}

async function serve() {
  const { default: Provider, errors } = await import('oidc-provider');

  // Signing key for ID tokens (no development keystore). Generated per start; each cluster
  // worker has its own, which is fine for this benchmark (no ID token is ever verified).
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig', kid: 'bench-rs256' };

  // Records what triggerAuthenticationDevice was asked to do; nobody approves anything, so
  // every backchannel request stays pending until it expires.
  let triggered = 0;

  const configuration = {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['urn:openid:params:grant-type:ciba', 'client_credentials'],
        response_types: [],
        redirect_uris: [],
        backchannel_token_delivery_mode: 'poll',
        scope: 'openid',
      },
    ],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    async findAccount(ctx, id) {
      if (id !== ACCOUNT_ID) return undefined;
      return { accountId: id, async claims() { return { sub: id }; } };
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      ciba: {
        enabled: true,
        deliveryModes: ['poll'],
        async processLoginHint(ctx, loginHint) {
          return loginHint === LOGIN_HINT ? ACCOUNT_ID : undefined;
        },
        async processLoginHintToken() {
          return undefined;
        },
        // Called on every request (with undefined when the parameter is absent).
        async verifyUserCode() {},
        async validateRequestContext() {},
        async validateBindingMessage(ctx, bindingMessage) {
          if (bindingMessage !== undefined && (bindingMessage.length < 1 || bindingMessage.length > 20)) {
            throw new errors.InvalidBindingMessage('binding_message must be 1 to 20 characters');
          }
        },
        async triggerAuthenticationDevice() {
          triggered += 1;
        },
      },
    },
    ttl: {
      AccessToken: 3600,
      ClientCredentials: 600,
      IdToken: 3600,
      Grant: 3600,
      BackchannelAuthenticationRequest(ctx) {
        const requested = Number(ctx?.oidc?.params?.requested_expiry);
        return Number.isSafeInteger(requested) && requested > 0 ? Math.min(requested, 600) : 600;
      },
    },
  };

  const provider = new Provider(ISSUER, configuration);

  // Unexpected server-side failures (5xx) go to stderr; ordinary OAuth errors such as
  // authorization_pending are the expected answers and stay quiet.
  provider.on('server_error', (ctx, err) => {
    console.error('server_error', err);
  });

  const server = provider.listen(PORT, HOST, () => {
    if (WORKERS === 1) console.log(`ready ${ISSUER} workers=1`);
  });
  // wrk keeps its connections open for the whole run; don't let Node close idle ones early.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;

  const stop = () => {
    if (process.env.BENCH_VERBOSE) console.error(`pid ${process.pid}: ${triggered} devices triggered`);
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
