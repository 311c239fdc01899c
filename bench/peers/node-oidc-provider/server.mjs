// The named peer for bench/token_endpoint.py: panva/node-oidc-provider (certified OpenID Provider) with
// the smallest configuration that serves the benchmark's scenarios. Not a deployment: the in-memory
// adapter (the library's own, an LRU of 1000 entries) and a key pair made at start.
//
//   PORT=4100 BENCH_SECRET=... BENCH_JWT_KEY='{"kty":"EC",...}' node server.mjs
//
// Besides the provider's routes, POST /bench/refresh-tokens?n=32&client_id=bench mints n refresh tokens
// for a client through the provider's own models (a Grant and a RefreshToken each, as a completed
// authorization-code flow would leave them), so the benchmark needs no browser.
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 4100);
const issuer = `http://127.0.0.1:${port}`;
const secret = process.env.BENCH_SECRET;
const jwtKey = JSON.parse(process.env.BENCH_JWT_KEY || 'null');
if (!secret || !jwtKey) {
  throw new Error('BENCH_SECRET and BENCH_JWT_KEY (the private_key_jwt client\'s public JWK) are required');
}

const signing = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
const common = {
  grant_types: ['client_credentials', 'refresh_token', 'authorization_code'],
  redirect_uris: ['https://bench.example/cb'],
  response_types: ['code'],
  scope: 'openid offline_access service:positions:read',
  id_token_signed_response_alg: 'ES256',
};

const provider = new Provider(issuer, {
  clients: [
    { ...common, client_id: 'bench', client_secret: secret, token_endpoint_auth_method: 'client_secret_basic' },
    {
      ...common,
      client_id: 'bench-public',
      grant_types: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: 'none',
    },
    {
      ...common,
      client_id: 'bench-jwt',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [jwtKey] },
    },
  ],
  jwks: { keys: [{ ...signing, kid: 'bench-es256', use: 'sig', alg: 'ES256' }] },
  scopes: ['openid', 'offline_access', 'service:positions:read'],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
  },
  // Our server rotates every refresh token (RFC 9700 4.14.2); the peer's default rotates only for public
  // clients, so rotation is switched on to measure the same work.
  rotateRefreshToken: true,
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
});

async function mintRefreshTokens(n, clientId) {
  const client = await provider.Client.find(clientId);
  const now = Math.floor(Date.now() / 1000);
  const tokens = [];
  for (let i = 0; i < n; i += 1) {
    const accountId = `bench-user-${i}`;
    const grant = new provider.Grant({ accountId, clientId: client.clientId });
    grant.addOIDCScope('openid offline_access');
    const grantId = await grant.save();
    const token = new provider.RefreshToken({
      accountId, client, grantId, gty: 'authorization_code', scope: 'openid offline_access', authTime: now,
    });
    tokens.push(await token.save());
  }
  return tokens;
}

const callback = provider.callback();
createServer((req, res) => {
  const url = new URL(req.url, issuer);
  if (req.method === 'POST' && url.pathname === '/bench/refresh-tokens') {
    mintRefreshTokens(Number(url.searchParams.get('n') || 32), url.searchParams.get('client_id') || 'bench').then(
      (tokens) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify(tokens)); },
      (err) => { res.statusCode = 500; res.end(String(err)); },
    );
    return;
  }
  callback(req, res);
}).listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
