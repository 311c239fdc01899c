// One run of a FAPI 2.0 relying party (openid-client: PAR, PKCE S256, private_key_jwt, DPoP) against a
// running Portcullis, with a headless Chromium and an injected test wallet standing in for the user.
//
// Input: one JSON object on stdin (fields: see run_flow in tests/integration/test_openid_client_e2e.py).
// Output: one JSON line on stdout, {"ok": true, ...facts} or {"ok": false, "error": "...", ...facts so far}.
// The pytest side asserts.
import { readFileSync } from "node:fs";
import * as client from "openid-client";
import { chromium } from "playwright-core";
import { fapiClient } from "./fapi.mjs";
import { TestWallet } from "./wallet.mjs";

const input = JSON.parse(readFileSync(0, "utf8"));
const result = { ok: false, scenario: input.scenario, wire: [], console: [], requests: [] };
const TIMEOUT = input.timeout_ms ?? 20000;

function decodeJwt(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
}

// Keep what went over the wire to the token endpoint, as sent (openid-client lower-cases token_type).
async function recordingFetch(url, options) {
  const response = await fetch(url, options);
  const path = new URL(url).pathname;
  if (path === "/token" || path === "/par") {
    let body = null;
    try {
      body = await response.clone().json();
    } catch {
      body = null;
    }
    result.wire.push({ path, status: response.status, body });
  }
  return response;
}

async function relyingParty() {
  const { config, dpop, dpopKeys } = await fapiClient(input);
  config[client.customFetch] = recordingFetch;
  result.dpop_public_jwk = await crypto.subtle.exportKey("jwk", dpopKeys.publicKey);
  return { config, dpop };
}

async function authorizationRequest(config, dpop) {
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const expectedState = client.randomState();
  const expectedNonce = client.randomNonce();
  const parameters = {
    redirect_uri: input.redirect_uri,
    scope: input.scope,
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: "S256",
    state: expectedState,
    nonce: expectedNonce,
    ...(input.extra_parameters ?? {}),
  };
  const url = await client.buildAuthorizationUrlWithPAR(config, parameters, { DPoP: dpop });
  result.authorization_url = url.href;
  result.state = expectedState;
  return { url, checks: { pkceCodeVerifier, expectedState, expectedNonce, idTokenExpected: true } };
}

async function browserFor(wallet) {
  const browser = await chromium.launch({
    executablePath: input.chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext();
  await wallet.install(context);
  // Nothing listens on the redirect URI: the browser's navigation there is answered here and remembered.
  await context.route(
    (url) => url.href.startsWith(input.redirect_uri),
    (route) => route.fulfill({ status: 200, contentType: "text/plain", body: "callback captured" }),
  );
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const authenticator = input.virtual_authenticator ? await virtualAuthenticator(page) : null;
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") result.console.push(msg.text());
  });
  page.on("pageerror", (exc) => result.console.push(`pageerror: ${exc.message}`));
  page.on("request", (req) => result.requests.push(`${req.method()} ${new URL(req.url()).pathname}`));
  return { browser, page, authenticator };
}

// Chromium's virtual authenticator (CDP WebAuthn domain) in the page's tab: a platform passkey provider
// with resident keys and user verification, standing in for a phone or laptop with a fingerprint reader.
async function virtualAuthenticator(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return {
    // false: the PIN or biometric check fails, as when someone else holds the device
    userVerified: (isUserVerified) => cdp.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified }),
    credentials: async () => (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials,
  };
}

// A passkey registered for real through the API (docs/MFA.md), with the access token of a recent wallet
// sign-in: the server's creation options, navigator.credentials.create() on a page of the issuer's origin
// (the browser's own JSON methods, not the hosted page's code), then the credential back to the server.
async function registerPasskey(page, authenticator) {
  if (!authenticator) throw new Error("registering a passkey needs virtual_authenticator");
  const api = async (path, body) => {
    const response = await fetch(new URL(path, input.issuer), {
      method: "POST",
      headers: { Authorization: `Bearer ${input.passkey_bearer}`, "Content-Type": "application/json" },
      body: JSON.stringify(body ?? {}),
    });
    return { status: response.status, body: await response.json() };
  };
  const options = await api("/mfa/webauthn/registration");
  result.registration = { options_status: options.status, options: options.body };
  if (options.status !== 200) throw new Error(`registration options: HTTP ${options.status}`);
  await page.goto(new URL("/.well-known/openid-configuration", input.issuer).href);
  const credential = await page.evaluate(async (json) => {
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(json);
    return (await navigator.credentials.create({ publicKey })).toJSON();
  }, options.body);
  const finished = await api("/mfa/webauthn/registration/finish", { credential, label: "Virtual passkey" });
  result.registration.finish_status = finished.status;
  result.registration.factor = finished.body;
  result.registration.authenticator_credentials = (await authenticator.credentials()).length;
}

async function openPage(page, url) {
  const response = await page.goto(url.href);
  result.page = {
    status: response.status(),
    csp: response.headers()["content-security-policy"] ?? null,
    content_type: response.headers()["content-type"] ?? null,
  };
}

// What a call that must fail answered: the OAuth error and HTTP status, or that it did not fail.
async function failure(call) {
  try {
    await call();
    return { failed: false };
  } catch (exc) {
    return { failed: true, error: exc.error ?? exc.code ?? exc.name, status: exc.status ?? null };
  }
}

const visible = (page, selector) => page.locator(selector).isVisible();

async function errorText(page) {
  const box = page.locator("#error");
  await box.waitFor({ state: "visible" });
  return (await box.textContent()).trim();
}

async function callback(page) {
  await page.waitForURL((url) => url.href.startsWith(input.redirect_uri));
  const url = new URL(page.url());
  result.callback = { url: url.href, params: Object.fromEntries(url.searchParams) };
  return url;
}

async function tokensFor(config, dpop, callbackUrl, checks) {
  const tokens = await client.authorizationCodeGrant(config, callbackUrl, checks, undefined, { DPoP: dpop });
  const claims = tokens.claims();
  result.id_token_claims = claims;
  result.token_type = tokens.token_type;
  result.scope = tokens.scope ?? null;
  result.access_token_claims = decodeJwt(tokens.access_token);
  return { tokens, claims };
}

const scenarios = {
  // The whole FAPI 2.0 round: consent, code, tokens, userinfo, refresh, introspection, revocation.
  async allow({ config, dpop, page, wallet }) {
    const { url, checks } = await authorizationRequest(config, dpop);
    await openPage(page, url);
    result.signin_text = (await page.locator("#signin").innerText()).trim();
    await page.click("#connect");
    await page.locator("#consent").waitFor({ state: "visible" });
    result.consent_text = (await page.locator("#consent").innerText()).trim();
    await page.click("#allow");
    const callbackUrl = await callback(page);
    const { tokens, claims } = await tokensFor(config, dpop, callbackUrl, checks);
    // FAPI 2.0 5.3.2.2 / RFC 9126 section 4: a request_uri is good for one authorization request
    const again = await fetch(url.href, { redirect: "manual" });
    result.request_uri_reuse = { status: again.status, location: again.headers.get("location") };
    result.userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP: dpop });
    // RFC 9449 section 7.1: a DPoP-bound token presented as a Bearer token is refused
    const downgrade = await fetch(config.serverMetadata().userinfo_endpoint, {
      headers: { Authorization: `Bearer ${tokens.access_token}` },
    });
    result.bearer_downgrade = { status: downgrade.status, www_authenticate: downgrade.headers.get("www-authenticate") };
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: dpop });
    result.refreshed = {
      token_type: refreshed.token_type,
      access_token_differs: refreshed.access_token !== tokens.access_token,
      refresh_token_differs: refreshed.refresh_token !== tokens.refresh_token,
      access_token_claims: decodeJwt(refreshed.access_token),
    };
    result.introspection_before = await client.tokenIntrospection(config, refreshed.access_token);
    await client.tokenRevocation(config, refreshed.access_token);
    result.introspection_after = await client.tokenIntrospection(config, refreshed.access_token);
    result.refresh_introspection_after = await client.tokenIntrospection(config, refreshed.refresh_token);
    // RFC 6749 section 4.1.2: a code is redeemed once
    result.code_replay = await failure(() =>
      client.authorizationCodeGrant(config, callbackUrl, checks, undefined, { DPoP: dpop }),
    );
    result.wallet_calls = [...new Set(wallet.calls)];
    result.signed_messages = wallet.signed;
  },

  // The user says no: the client gets error=access_denied, its state and the issuer (RFC 9207).
  async deny({ config, dpop, page }) {
    const { url } = await authorizationRequest(config, dpop);
    await openPage(page, url);
    await page.click("#connect");
    await page.locator("#consent").waitFor({ state: "visible" });
    await page.click("#deny");
    await callback(page);
  },

  // A wallet on another chain is told to switch, and nothing is signed.
  async wrong_chain({ config, dpop, page, wallet }) {
    const { url } = await authorizationRequest(config, dpop);
    await openPage(page, url);
    await page.click("#connect");
    result.error_text = await errorText(page);
    result.consent_visible = await visible(page, "#consent");
    result.wallet_calls = [...new Set(wallet.calls)];
    result.signed_messages = wallet.signed;
  },

  // The user rejects the first signature request; the page says so, and a second try with the same nonce
  // (nothing fetched again) reaches consent.
  async retry({ config, dpop, page, wallet }) {
    wallet.rejections = 1;
    const { url } = await authorizationRequest(config, dpop);
    await openPage(page, url);
    await page.click("#connect");
    result.error_text = await errorText(page);
    await page.click("#connect");
    await page.locator("#consent").waitFor({ state: "visible" });
    result.error_visible_at_consent = await visible(page, "#error");
    result.wallet_calls = wallet.calls;
    result.signed_messages = wallet.signed;
  },

  // RFC 9470 step-up on the page. Each attempt is a code typed into the field ({code}) or the passkey
  // button ({passkey: {user_verified}}); after each, consent shows or an error does, and nothing else.
  async step_up({ config, dpop, page, authenticator }) {
    if (input.passkey_bearer) await registerPasskey(page, authenticator);
    const { url, checks } = await authorizationRequest(config, dpop);
    await openPage(page, url);
    await page.click("#connect");
    await page.locator("#second-factor").waitFor({ state: "visible" });
    result.factor_label = (await page.locator("label[for=second-factor]").innerText()).trim();
    result.passkey_offered = await visible(page, "#use-passkey");
    result.attempts = [];
    const attempts = input.attempts.length > 0 ? input.attempts : input.codes.map((code) => ({ code }));
    for (const attempt of attempts) {
      const before = result.requests.length;
      if (attempt.passkey) {
        if (authenticator) await authenticator.userVerified(attempt.passkey.user_verified ?? true);
        await page.click("#use-passkey");
      } else {
        await page.fill("#second-factor", attempt.code);
        await page.click("#submit-factor");
      }
      await page.locator("#consent:visible, #error:visible").first().waitFor();
      const done = { ...attempt, requests: result.requests.slice(before) };
      if (await visible(page, "#consent")) {
        result.attempts.push({ ...done, outcome: "consent" });
        break;
      }
      result.attempts.push({
        ...done,
        outcome: "error",
        error_text: await errorText(page),
        code_field_usable:
          (await visible(page, "#second-factor")) &&
          (await page.locator("#second-factor").isEditable()) &&
          (await page.locator("#submit-factor").isEnabled()),
        passkey_button_enabled: await page.locator("#use-passkey").isEnabled(),
      });
    }
    if (!(await visible(page, "#consent"))) return;
    await page.click("#allow");
    await tokensFor(config, dpop, await callback(page), checks);
  },
};

let browser = null;
try {
  const wallet = new TestWallet(input.wallet_key, input.wallet_chain_id);
  result.wallet_address = wallet.address;
  const { config, dpop } = await relyingParty();
  const opened = await browserFor(wallet);
  browser = opened.browser;
  await scenarios[input.scenario]({ config, dpop, page: opened.page, wallet, authenticator: opened.authenticator });
  result.ok = true;
} catch (exc) {
  result.error = `${exc.name}: ${exc.message}`;
  if (exc.cause !== undefined) result.error_cause = exc.cause instanceof Error ? String(exc.cause) : exc.cause;
  if (exc.code !== undefined) result.error_code = exc.code;
} finally {
  if (browser) await browser.close();
}
process.stdout.write(JSON.stringify(result) + "\n");
