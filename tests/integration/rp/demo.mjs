// The demo dApp (frontend-demo/, served at <issuer>/demo/) in headless Chromium, with injected EIP-6963 /
// EIP-1193 test wallets standing in for the user, against a real Portcullis and the sample perps API.
//
// Input: one JSON object on stdin (fields: see run_demo in tests/integration/test_frontend_demo_browser.py).
// Output: one JSON line on stdout, {"ok": true, ...facts} or {"ok": false, "error": "...", ...facts so far}.
// Screenshots of every screen go to input.out_dir. The pytest side asserts.
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { DemoWallet } from "./demo_wallet.mjs";

const input = JSON.parse(readFileSync(0, "utf8"));
const result = { ok: false, scenario: input.scenario, console: [], requests: [], screens: [], steps: {} };
const TIMEOUT = input.timeout_ms ?? 30000;

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s), for the code a user would read off an authenticator app.
function totp(secretBase32, at) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secretBase32.replace(/=+$/, "").toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[19] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1e6).padStart(6, "0");
}

async function screen(page, name) {
  const file = join(input.out_dir, `${String(result.screens.length + 1).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  result.screens.push(file);
}

async function text(page, selector) {
  return (await page.locator(selector).innerText()).trim();
}

// Click, then wait for the dApp's answer in #result (emptied first, so an old answer never counts).
async function answer(page, selector) {
  await page.evaluate(() => document.getElementById("result").replaceChildren());
  await page.click(selector);
  await page.locator("#result p").waitFor();
  return text(page, "#result");
}

async function demoReady(page) {
  await page.waitForURL((url) => url.href.startsWith(input.demo_url));
  await page.locator("body[data-ready=true]").waitFor();
}

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
  return async () => (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials;
}

// A passkey registered through /mfa (docs/MFA.md) with a recent wallet sign-in's token, created by the
// virtual authenticator on a page of the issuer's origin.
async function registerPasskey(page, credentials) {
  const api = async (path, body) => {
    const response = await fetch(new URL(path, input.issuer), {
      method: "POST",
      headers: { Authorization: `Bearer ${input.passkey_bearer}`, "Content-Type": "application/json" },
      body: JSON.stringify(body ?? {}),
    });
    return { status: response.status, body: await response.json() };
  };
  const options = await api("/mfa/webauthn/registration");
  await page.goto(new URL("/.well-known/openid-configuration", input.issuer).href);
  const credential = await page.evaluate(async (json) => {
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(json);
    return (await navigator.credentials.create({ publicKey })).toJSON();
  }, options.body);
  const finished = await api("/mfa/webauthn/registration/finish", { credential, label: "Virtual passkey" });
  result.passkey = { finish_status: finished.status, credentials: (await credentials()).length };
}

async function hostedSignIn(page, name) {
  await page.waitForURL((url) => url.href.startsWith(`${input.issuer}/authorize`));
  await page.locator("#connect").waitFor();
  await screen(page, `${name}-hosted-signin`);
  await page.click("#connect");
}

async function hostedConsent(page, name) {
  await page.locator("#consent").waitFor({ state: "visible" });
  result.steps[`${name}_consent`] = await text(page, "#consent");
  await screen(page, `${name}-hosted-consent`);
  await page.click("#allow");
  await demoReady(page);
}

const session = (page) => page.evaluate(() => JSON.parse(sessionStorage.getItem("portcullis-demo.session")));

async function connectWallet(page) {
  await page.goto(input.demo_url);
  await demoReady(page);
  result.wallets = await page.locator("#wallets button").evaluateAll((buttons) =>
    buttons.map((b) => ({ name: b.innerText.trim(), rdns: b.dataset.rdns, icon: b.querySelector("img")?.src.slice(0, 22) })),
  );
  await screen(page, "wallets");
  await page.click('#wallets button[data-rdns="test.portcullis.a"]');
  await page.locator("#wallet-connected").waitFor({ state: "visible" });
  if (await page.locator("#wrong-chain").isVisible()) {
    result.wrong_chain_text = await text(page, "#wrong-chain-text");
    result.siwe_button_disabled_on_wrong_chain = await page.locator("#signin-siwe").isDisabled();
    await screen(page, "wrong-chain");
    await page.click("#switch-chain");
    await page.locator("#wrong-chain").waitFor({ state: "hidden" });
  }
  result.connected_text = await text(page, "#wallet-connected");
}

async function signInHere(page, wallet) {
  if (input.reject_first_signature) {
    wallet.rejections = 1;
    const before = result.requests.length;
    await page.click("#signin-siwe");
    await page.locator("#error").waitFor({ state: "visible" });
    result.rejected_text = await text(page, "#error");
    result.requests_after_rejection = result.requests.slice(before);
    await screen(page, "signature-rejected");
  }
  await page.click("#signin-siwe");
  await page.locator("#session, #error").filter({ visible: true }).first().waitFor();
}

async function signInWithPortcullis(page) {
  await page.click("#signin-oidc");
  await hostedSignIn(page, "signin");
  await hostedConsent(page, "signin");
  await page.locator("#session").waitFor({ state: "visible" });
}

async function stepUp(page, wallet) {
  result.withdraw_challenge = await answer(page, "#withdraw");
  await screen(page, "withdrawal-needs-step-up");
  await page.click("#step-up");
  await hostedSignIn(page, "step-up");
  await page.locator("#second-factor").waitFor({ state: "visible" });
  await screen(page, "step-up-second-factor");
  if (input.step_up === "passkey") {
    await page.click("#use-passkey");
  } else {
    // the confirming code's step is spent: the next step's code is accepted (RFC 6238 5.2, one step)
    await page.fill("#second-factor", totp(input.totp_secret, Date.now() / 1000 + 30));
    await page.click("#submit-factor");
  }
  await hostedConsent(page, "step-up");
  await page.locator("#result p").waitFor();
  await page.waitForFunction(() => /accepted|Refused|refused/.test(document.getElementById("result").innerText));
  result.withdraw_after_step_up = await text(page, "#result");
  result.step_up_claims = (await session(page)).stepup.claims;
  await screen(page, "withdrawal-accepted");
}

const scenarios = {
  // The whole journey: wallet, chain, sign-in (input.path: "siwe" here, or "oidc" through the hosted
  // page), the session in words, positions, an order inside and one outside the caps, a silent refresh,
  // a stepped-up withdrawal, sign-out.
  async journey({ page, wallet, credentials }) {
    if (input.passkey_bearer) await registerPasskey(page, credentials);
    await connectWallet(page);
    if (input.path === "siwe") await signInHere(page, wallet);
    else await signInWithPortcullis(page);
    result.session_text = await text(page, "#session");
    result.session = await session(page);
    await screen(page, "session");
    result.positions = await answer(page, "#positions");
    result.order_ok = await answer(page, "#order-ok");
    await screen(page, "order-accepted");
    result.order_over = await answer(page, "#order-over");
    await screen(page, "order-refused");
    const before = (await session(page)).access_token;
    await page.click("#refresh");
    await page.waitForFunction(() => /renewed|Could not renew/.test(document.getElementById("status").innerText + document.getElementById("error").innerText));
    const after = await session(page);
    result.refresh = { status: await text(page, "#status"), error: await text(page, "#error"), changed: after.access_token !== before, dpop: after.dpop };
    // Silent refresh: a session whose token is within the refresh lead of its end (as if 14.5 minutes had
    // passed) is renewed by the page's own timer after a reload, with no click.
    const kept = await session(page);
    await page.evaluate((s) => sessionStorage.setItem("portcullis-demo.session", JSON.stringify({ ...s, expires_at: Math.floor(Date.now() / 1000) + 31 })), kept);
    await page.reload();
    await demoReady(page);
    await page.waitForFunction(() => /renewed/.test(document.getElementById("status").innerText), null, { timeout: 20000 });
    const silent = await session(page);
    result.silent_refresh = { changed: silent.access_token !== kept.access_token, expires_in: silent.expires_at - Date.now() / 1000 };
    if (input.step_up) await stepUp(page, wallet);
    result.last_access_token = (await session(page)).access_token;
    await page.click("#signout");
    await demoReady(page);
    await page.waitForFunction(() => /signed out/.test(document.getElementById("status").innerText));
    result.signed_out_text = await text(page, "#status");
    result.session_after_sign_out = await session(page);
    result.session_visible_after_sign_out = await page.locator("#session").isVisible();
    await screen(page, "signed-out");
  },

  // A wallet the registry does not know signs in here: the dApp says why, in words.
  async unregistered({ page }) {
    await connectWallet(page);
    await page.click("#signin-siwe");
    await page.locator("#error").waitFor({ state: "visible" });
    result.error_text = await text(page, "#error");
    result.session_visible = await page.locator("#session").isVisible();
    await screen(page, "wallet-not-on-registry");
  },
};

let browser = null;
let page = null;
try {
  const wallet = new DemoWallet(input.wallet_key, input.wallet_chain_id, input.known_chains ?? [input.wallet_chain_id]);
  result.wallet_address = wallet.address;
  browser = await chromium.launch({ executablePath: input.chromium, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  await wallet.install(context);
  page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const credentials = input.virtual_authenticator ? await virtualAuthenticator(page) : null;
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") result.console.push(msg.text());
  });
  page.on("pageerror", (exc) => result.console.push(`pageerror: ${exc.message}`));
  page.on("request", (req) => result.requests.push(`${req.method()} ${req.url()}`));
  await scenarios[input.scenario]({ page, wallet, credentials });
  result.wallet_calls = [...new Set(wallet.calls)];
  result.wallet_added_chains = wallet.added;
  result.ok = true;
} catch (exc) {
  result.error = `${exc.name}: ${exc.message}`;
  if (page) {
    try {
      result.error_page = { url: page.url(), text: (await page.locator("body").innerText()).slice(0, 2000) };
      await screen(page, "failure");
    } catch {}
  }
} finally {
  if (browser) await browser.close();
}
process.stdout.write(JSON.stringify(result) + "\n");
