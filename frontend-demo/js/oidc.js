// The standard path with oauth4webapi (vendor/oauth4webapi.js, not modified): OpenID Connect
// authorization code as a public client, PAR (RFC 9126), PKCE S256 (RFC 7636), and DPoP (RFC 9449) with a
// P-256 key that WebCrypto made non-extractable: script on this page can sign with it, never read it.
// The key survives the trip to the hosted page in IndexedDB (a CryptoKey is stored as an opaque object).
import * as oauth from "../vendor/oauth4webapi.js";

const DB = "portcullis-demo";
const PENDING = "portcullis-demo.pending";
// Development over http: oauth4webapi refuses http endpoints unless told (make run has no TLS).
const insecure = (config) => (config.issuer.startsWith("http://") ? { [oauth.allowInsecureRequests]: true } : {});

export async function discover(config) {
  const issuer = new URL(config.issuer);
  const response = await oauth.discoveryRequest(issuer, { ...insecure(config), algorithm: "oidc" });
  return oauth.processDiscoveryResponse(issuer, response);
}

export function clientOf(config, as) {
  return { client_id: config.client_id, id_token_signed_response_alg: as.id_token_signing_alg_values_supported?.[0] };
}

function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore("keys");
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function keyOp(mode, op) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const request = op(db.transaction("keys", mode).objectStore("keys"));
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

// This tab's DPoP key pair: made once (extractable: false), kept until sign-out.
export async function dpopKeys() {
  const kept = await keyOp("readonly", (store) => store.get("dpop"));
  if (kept) return kept;
  const made = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
  await keyOp("readwrite", (store) => store.put(made, "dpop"));
  return made;
}

export async function forgetKeys() {
  await keyOp("readwrite", (store) => store.delete("dpop"));
}

export async function dpopHandle(config, as) {
  return oauth.DPoP(clientOf(config, as), await dpopKeys());
}

// RFC 9449 section 8: a server may answer use_dpop_nonce once; the handle has kept the nonce, try again.
async function withNonceRetry(call) {
  try {
    return await call();
  } catch (exc) {
    if (!oauth.isDPoPNonceError(exc)) throw exc;
    return call();
  }
}

// Push the request (PAR), remember what the callback needs, and send the browser to the hosted page.
// `extra`: acr_values, max_age, authorization_details for a step-up; `purpose` says what to do on return.
export async function startSignIn(config, as, { scope, authorizationDetails, extra = {}, purpose }) {
  const client = clientOf(config, as);
  const dpop = await dpopHandle(config, as);
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const params = new URLSearchParams({
    response_type: "code",
    redirect_uri: config.redirect_uri,
    scope,
    code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: "S256",
    state,
    nonce,
    ...extra,
  });
  if (authorizationDetails) params.set("authorization_details", JSON.stringify(authorizationDetails));
  const pushed = await withNonceRetry(async () => {
    const response = await oauth.pushedAuthorizationRequest(as, client, oauth.None(), params, {
      DPoP: dpop,
      ...insecure(config),
    });
    return oauth.processPushedAuthorizationResponse(as, client, response);
  });
  sessionStorage.setItem(PENDING, JSON.stringify({ codeVerifier, state, nonce, ...purpose }));
  const authorize = new URL(as.authorization_endpoint);
  authorize.searchParams.set("client_id", config.client_id);
  authorize.searchParams.set("request_uri", pushed.request_uri);
  window.location.assign(authorize.href);
}

export function pendingReturn() {
  const url = new URL(window.location.href);
  const kept = sessionStorage.getItem(PENDING);
  if (!kept || !(url.searchParams.has("code") || url.searchParams.has("error"))) return null;
  return { url, pending: JSON.parse(kept) };
}

// Back from the hosted page: check state and iss (RFC 9207), redeem the code with the verifier and a
// DPoP proof, check the ID token (signature, nonce, aud, iss). Clears the query from the address bar.
export async function finishSignIn(config, as, { url, pending }) {
  sessionStorage.removeItem(PENDING);
  window.history.replaceState(null, "", config.redirect_uri);
  const client = clientOf(config, as);
  const params = oauth.validateAuthResponse(as, client, url, pending.state);
  const dpop = await dpopHandle(config, as);
  const result = await withNonceRetry(async () => {
    const response = await oauth.authorizationCodeGrantRequest(
      as, client, oauth.None(), params, config.redirect_uri, pending.codeVerifier, { DPoP: dpop, ...insecure(config) },
    );
    return oauth.processAuthorizationCodeResponse(as, client, response, { expectedNonce: pending.nonce, requireIdToken: true });
  });
  return { tokens: result, claims: oauth.getValidatedIdTokenClaims(result), pending };
}

export async function refresh(config, as, refreshToken) {
  const client = clientOf(config, as);
  const dpop = await dpopHandle(config, as);
  return withNonceRetry(async () => {
    const response = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshToken, {
      DPoP: dpop,
      ...insecure(config),
    });
    return oauth.processRefreshTokenResponse(as, client, response);
  });
}

// A call to the sample API with the token, and a DPoP proof when the token is DPoP-bound. Refusals come
// back as { response, challenge }: oauth4webapi throws on a WWW-Authenticate challenge, the page shows it.
export async function apiCall(config, as, session, method, path, body) {
  const headers = new Headers(body ? { "Content-Type": "application/json" } : {});
  const url = new URL(path, config.api_url);
  const options = url.protocol === "http:" ? { [oauth.allowInsecureRequests]: true } : {};
  if (session.dpop) options.DPoP = await dpopHandle(config, as);
  try {
    const response = await withNonceRetry(() =>
      oauth.protectedResourceRequest(session.access_token, method, url, headers, body ? JSON.stringify(body) : null, options),
    );
    return { response, challenge: null };
  } catch (exc) {
    if (exc instanceof oauth.WWWAuthenticateChallengeError) return { response: exc.response, challenge: exc.cause };
    throw exc;
  }
}

// OpenID Connect RP-Initiated Logout 1.0: the server ends the session the ID token names and sends the
// browser back to the registered post-logout URI with our state.
export function logoutUrl(config, as, idToken, state) {
  const url = new URL(as.end_session_endpoint);
  url.searchParams.set("id_token_hint", idToken);
  url.searchParams.set("client_id", config.client_id);
  url.searchParams.set("post_logout_redirect_uri", config.redirect_uri);
  url.searchParams.set("state", state);
  return url.href;
}

export const generateState = oauth.generateRandomState;
