// The hosted delegation page (/delegations/manage) in headless Chromium with the injected test wallet:
// "create" connects and signs in, pastes the bot's public JWK, reads the plain-words review, signs and
// reads the list; "revoke" connects, signs in and revokes the delegation shown.
//
// Input: one JSON object on stdin (tests/integration/test_delegation_page_browser.py).
// Output: one JSON line on stdout, {"ok": true, ...} or {"ok": false, "error"}.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { TestWallet } from "./wallet.mjs";

const input = JSON.parse(readFileSync(0, "utf8"));
const result = { ok: false, console: [] };

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
  await page.goto(`${input.issuer}/delegations/manage`);
  await page.click("#connect");
  await page.waitForSelector("#create:not([hidden])");
  result.account = await page.textContent("#account-address");
  if (input.action === "create") {
    await page.fill("#bot-jwk", JSON.stringify(input.bot_jwk));
    await page.check("#scope-portfolio");
    await page.fill("#leverage", "5");
    await page.click("#preview");
    await page.waitForSelector("#review:not([hidden])");
    result.review = await page.$$eval("#review-list li", (items) => items.map((li) => li.textContent));
    await page.click("#sign");
    await page.waitForSelector("li.delegation");
  } else {
    await page.waitForSelector("li.delegation button.revoke");
    await page.click("li.delegation button.revoke");
    await page.waitForSelector('li.delegation[data-state="revoked"]');
  }
  result.listed = await page.$$eval("li.delegation", (items) =>
    items.map((li) => ({ id: li.dataset.id, state: li.dataset.state, text: li.textContent })),
  );
  result.status = await page.textContent("#status");
  result.error_shown = await page.isVisible("#error");
  result.wallet_calls = wallet.calls;
  result.signed = wallet.signed;
  result.ok = true;
} catch (exc) {
  result.error = String(exc && exc.stack ? exc.stack : exc);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
