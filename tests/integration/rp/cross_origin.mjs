// A dApp page on another origin calling Portcullis from headless Chromium (CORS, docs/CLIENTS.md): it reads
// discovery and JWKS, asks /siwe/nonce for a nonce, has the injected test wallet sign the EIP-4361 message
// and trades it at /siwe/verify, then calls /userinfo with the token; a page on an unregistered origin
// reads discovery but is blocked by the browser at /siwe/nonce.
//
// Input: one JSON object on stdin (see tests/integration/test_cross_origin_browser.py).
// Output: one JSON line on stdout, {"ok": true, "dapp": {...}, "stranger": {...}} or {"ok": false, "error"}.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { TestWallet } from "./wallet.mjs";

const input = JSON.parse(readFileSync(0, "utf8"));
const result = { ok: false, console: [] };

// Runs in the page. Every fetch is recorded as the page sees it: status, body, the headers it may read,
// or the TypeError Chromium raises when CORS withholds the response.
async function callPortcullis({ issuer, clientId, address, chainId, signIn }) {
  async function read(url, init) {
    try {
      const response = await fetch(url, init);
      const text = await response.text();
      let body = null;
      try {
        body = JSON.parse(text);
      } catch {
        body = null;
      }
      return {
        status: response.status,
        body,
        www_authenticate: response.headers.get("WWW-Authenticate"),
      };
    } catch (exc) {
      return { blocked: String(exc) };
    }
  }
  const json = (body) => ({
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const out = { origin: window.location.origin };
  out.discovery = await read(`${issuer}/.well-known/openid-configuration`);
  out.jwks = await read(`${issuer}/jwks`);
  out.nonce = await read(`${issuer}/siwe/nonce`, json({ client_id: clientId }));
  out.nonce_with_credentials = await read(`${issuer}/siwe/nonce`, {
    ...json({ client_id: clientId }),
    credentials: "include",
  });
  if (!signIn || !out.nonce.body) return out;
  const o = out.nonce.body;
  const message = [
    `${o.scheme}://${o.domain} wants you to sign in with your Ethereum account:`,
    address,
    "",
    "Sign in to the dApp.",
    "",
    `URI: ${o.uri}`,
    "Version: 1",
    `Chain ID: ${chainId}`,
    `Nonce: ${o.nonce}`,
    `Issued At: ${o.issued_at}`,
    `Expiration Time: ${o.expiration_time}`,
  ].join("\n");
  const bytes = new TextEncoder().encode(message);
  const hex = "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const signature = await window.ethereum.request({ method: "personal_sign", params: [hex, address] });
  const verified = await read(`${issuer}/siwe/verify`, json({ message, signature, client_id: clientId }));
  const token = verified.body && verified.body.access_token;
  out.verify = { status: verified.status, blocked: verified.blocked, has_access_token: !!token };
  out.userinfo = await read(`${issuer}/userinfo`, { headers: { Authorization: `Bearer ${token}` } });
  out.userinfo_bad_token = await read(`${issuer}/userinfo`, { headers: { Authorization: "Bearer nope" } });
  return out;
}

const browser = await chromium.launch({
  executablePath: input.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const context = await browser.newContext();
  const wallet = new TestWallet(input.wallet_key, input.chain_id);
  await wallet.install(context);
  const page = await context.newPage();
  page.on("console", (message) => result.console.push(message.text()));
  page.setDefaultTimeout(input.timeout_ms ?? 20000);
  const args = { issuer: input.issuer, clientId: input.client_id, address: wallet.address, chainId: input.chain_id };
  await page.goto(input.dapp_url);
  result.dapp = await page.evaluate(callPortcullis, { ...args, signIn: true });
  await page.goto(input.stranger_url);
  result.stranger = await page.evaluate(callPortcullis, { ...args, signIn: false });
  result.wallet_calls = wallet.calls;
  result.ok = true;
} catch (exc) {
  result.error = String(exc && exc.stack ? exc.stack : exc);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
