// The hosted sign-in page as a person meets it, for tests/integration/test_hosted_page_browser.py: a FAPI 2.0
// relying party (openid-client: PAR, PKCE S256, private_key_jwt, DPoP) sends a headless Chromium at a 360 px
// wide viewport with an injected test wallet to Portcullis; the scenario reads the screens, saves a
// screenshot of each, measures horizontal overflow, and drives the page with the mouse or the keyboard only.
//
// Input: one JSON object on stdin (see run_page in the test). Output: one JSON line on stdout,
// {"ok": true, ...facts} or {"ok": false, "error": "...", ...facts so far}. The pytest side asserts.
import { readFileSync } from "node:fs";
import * as client from "openid-client";
import { chromium } from "playwright-core";
import { fapiClient } from "./fapi.mjs";
import { TestWallet } from "./wallet.mjs";

const input = JSON.parse(readFileSync(0, "utf8"));
const result = { ok: false, scenario: input.scenario, console: [], screens: {}, requests: [] };
const TIMEOUT = input.timeout_ms ?? 20000;
const WIDTH = input.width ?? 360;

async function authorizationUrl(config, dpop) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const parameters = {
    redirect_uri: input.redirect_uri,
    scope: input.scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    nonce,
    ...(input.extra_parameters ?? {}),
  };
  const url = await client.buildAuthorizationUrlWithPAR(config, parameters, { DPoP: dpop });
  result.state = state;
  return { url, checks: { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce } };
}

async function openBrowser(wallet) {
  const browser = await chromium.launch({
    executablePath: input.chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ viewport: { width: WIDTH, height: 780 } });
  await wallet.install(context);
  await context.route(
    (url) => url.href.startsWith(input.redirect_uri),
    (route) => route.fulfill({ status: 200, contentType: "text/plain", body: "callback captured" }),
  );
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") result.console.push(msg.text());
  });
  page.on("pageerror", (exc) => result.console.push(`pageerror: ${exc.message}`));
  page.on("request", (req) => result.requests.push(`${req.method()} ${new URL(req.url()).href}`));
  return { browser, page };
}

// What a screen shows: its text, whether it scrolls sideways at this width, and a screenshot of it.
async function screen(page, name, selector) {
  const overflow = await page.evaluate(() => ({
    scroll_width: document.documentElement.scrollWidth,
    body_scroll_width: document.body.scrollWidth,
    inner_width: window.innerWidth,
  }));
  const path = `${input.screenshot_dir}/${name}.png`;
  await page.screenshot({ path, fullPage: true });
  const text = selector ? (await page.locator(selector).innerText()).trim() : null;
  result.screens[name] = { ...overflow, screenshot: path, text };
}

async function failure(page) {
  await page.locator("#failure").waitFor({ state: "visible" });
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  await page.click("#failure-details summary");
  const technical = (await page.locator("#failure-technical").innerText()).trim();
  return {
    title: (await page.locator("#failure-title").innerText()).trim(),
    message: (await page.locator("#failure-message").innerText()).trim(),
    technical,
    back: (await page.locator("#back").innerText()).trim(),
    focused,
  };
}

async function callback(page) {
  await page.waitForURL((url) => url.href.startsWith(input.redirect_uri));
  const url = new URL(page.url());
  result.callback = { url: url.href, params: Object.fromEntries(url.searchParams) };
  return url;
}

// Spend the IP's verify budget (docs/RATE_LIMITS.md) just before the page signs in, as a burst of bad
// attempts from this network would.
async function exhaustVerify(count) {
  const statuses = [];
  for (let i = 0; i < count; i++) {
    const response = await fetch(new URL("/siwe/verify", input.issuer), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ message: "not a sign-in message", signature: "0x00" }),
    });
    statuses.push(response.status);
  }
  result.exhaust_statuses = statuses;
}

// Tab until ``id`` has focus, recording every focus stop on the way; Enter presses it.
async function tabTo(page, id, limit = 30) {
  const stops = [];
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el) return null;
      const style = getComputedStyle(el);
      return { id: el.id, tag: el.tagName, outline: style.outlineStyle, outline_width: style.outlineWidth };
    });
    stops.push(focused);
    if (focused && focused.id === id) return stops;
  }
  throw new Error(`focus never reached #${id}: ${JSON.stringify(stops)}`);
}

const scenarios = {
  // A refusal: the screen in words, the technical line, then "Back to <client>" to the client's redirect.
  async error({ config, dpop, page, wallet }) {
    if (input.rejections) wallet.rejections = input.rejections;
    const { url } = await authorizationUrl(config, dpop);
    await page.goto(url.href);
    if (input.signin_screenshot) await screen(page, "signin", "main");
    if (input.exhaust_verify) await exhaustVerify(input.exhaust_verify);
    await page.click("#connect");
    result.failure = await failure(page);
    result.consent_visible = await page.locator("#consent").isVisible();
    await screen(page, input.name, "main");
    await page.click("#back");
    await callback(page);
  },

  // Consent with the keyboard only: Tab to "Connect", Enter; focus moves to the consent heading; Tab to
  // "Allow", Enter; the code comes back and is exchanged.
  async consent_keyboard({ config, dpop, page }) {
    const { url, checks } = await authorizationUrl(config, dpop);
    await page.goto(url.href);
    await screen(page, "signin", "main");
    result.signin_text = (await page.locator("#signin").innerText()).trim();
    result.operator_line = (await page.locator("#operator-line").innerText()).trim();
    result.focus_to_connect = await tabTo(page, "connect");
    await page.keyboard.press("Enter");
    await page.locator("#consent").waitFor({ state: "visible" });
    result.focused_at_consent = await page.evaluate(() => document.activeElement.id);
    result.consent_text = (await page.locator("#consent").innerText()).trim();
    result.account_text = (await page.locator("#consent-account").innerText()).trim();
    await screen(page, "consent_narrowed", "main");
    result.focus_to_allow = await tabTo(page, "allow");
    await page.keyboard.press("Enter");
    const callbackUrl = await callback(page);
    const tokens = await client.authorizationCodeGrant(config, callbackUrl, checks, undefined, { DPoP: dpop });
    result.access_token_claims = JSON.parse(
      Buffer.from(tokens.access_token.split(".")[1], "base64url").toString("utf8"),
    );
  },

  // RFC 9470 step-up: the second-factor screen.
  async step_up({ config, dpop, page }) {
    const { url } = await authorizationUrl(config, dpop);
    await page.goto(url.href);
    await page.click("#connect");
    await page.locator("#second-factor").waitFor({ state: "visible" });
    result.focused = await page.evaluate(() => document.activeElement.id);
    await screen(page, "step_up", "main");
  },
};

let browser = null;
try {
  const wallet = new TestWallet(input.wallet_key, input.wallet_chain_id);
  result.wallet_address = wallet.address;
  const { config, dpop } = await fapiClient(input);
  const opened = await openBrowser(wallet);
  browser = opened.browser;
  await scenarios[input.scenario]({ config, dpop, page: opened.page, wallet });
  result.ok = true;
} catch (exc) {
  result.error = `${exc.name}: ${exc.message}`;
  if (exc.cause !== undefined) result.error_cause = exc.cause instanceof Error ? String(exc.cause) : exc.cause;
} finally {
  if (browser) await browser.close();
}
process.stdout.write(JSON.stringify(result) + "\n");
