// The FAPI 2.0 relying party the browser scenarios share (openid-client): discovery, private_key_jwt with
// the test's P-256 key, and a fresh DPoP key pair. ``input``: issuer, client_id, client_jwk.
import * as client from "openid-client";

export async function fapiClient(input) {
  const jwk = input.client_jwk;
  const key = await crypto.subtle.importKey("jwk", jwk, { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  const config = await client.discovery(
    new URL(input.issuer),
    input.client_id,
    {},
    client.PrivateKeyJwt({ key, kid: jwk.kid }),
    { execute: [client.allowInsecureRequests] },
  );
  const dpopKeys = await client.randomDPoPKeyPair("ES256");
  return { config, dpopKeys, dpop: client.getDPoPHandle(config, dpopKeys) };
}
