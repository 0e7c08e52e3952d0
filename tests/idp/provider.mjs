// A real OpenID provider for the token exchange tests: oidc-provider (the certified Node
// implementation) on 127.0.0.1 at a free port, issuing JWT access tokens to clients through the
// client_credentials grant with resource indicators (RFC 8707): the `resource` a client asks for
// becomes the token's `aud`.
//
//   IDP_CLIENT_SECRET=… node tests/idp/provider.mjs
//
// Prints its issuer URL (`http://127.0.0.1:PORT`) on one line once it answers, then serves until
// SIGTERM, SIGINT or the end of its standard input (so that it never outlives the test that
// started it), and exits 0 after closing its listener.
//
// Its clients, each with the secret from IDP_CLIENT_SECRET (client_secret_basic or _post):
//   deploy-es256  ES256-signed tokens, claim environment=production
//   deploy-rs256  RS256-signed tokens, claim environment=production
//   deploy-staging ES256-signed tokens, claim environment=staging
// For client_credentials the token's `sub` is the client id. Keys are made at start and live only
// in memory; the discovery document and JWKS are at the usual places.

import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const secret = process.env.IDP_CLIENT_SECRET;
if (!secret || secret.length < 16) {
  process.stderr.write('provider.mjs: set IDP_CLIENT_SECRET (at least 16 characters)\n');
  process.exit(2);
}

const CLIENTS = {
  'deploy-es256': { alg: 'ES256', claims: { environment: 'production' } },
  'deploy-rs256': { alg: 'RS256', claims: { environment: 'production' } },
  'deploy-staging': { alg: 'ES256', claims: { environment: 'staging' } },
};

async function signingKey(alg, kid) {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
}

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: Object.keys(CLIENTS).map((clientId) => ({
    client_id: clientId,
    client_secret: secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  jwks: {
    keys: [await signingKey('ES256', 'es256-1'), await signingKey('RS256', 'rs256-1')],
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Any absolute URI a client names is a resource server whose audience is that URI.
      getResourceServerInfo: async (_ctx, resourceIndicator, client) => ({
        audience: resourceIndicator,
        scope: 'connect',
        accessTokenTTL: 300,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: CLIENTS[client.clientId].alg } },
      }),
    },
  },
  extraTokenClaims: async (_ctx, token) => CLIENTS[token.clientId]?.claims,
});
// The test's own loopback issuer: oidc-provider only warns about http here.
server.on('request', provider.callback());

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();

process.stdout.write(`${issuer}\n`);
