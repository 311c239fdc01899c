// The hosted sign-in page: EIP-1193 wallet -> EIP-4361 message -> personal_sign -> POST signin ->
// (second factor: a code, or a passkey through WebAuthn) -> consent -> redirect. Text from the server is
// only ever set with textContent.
(() => {
  "use strict";
  const view = JSON.parse(document.getElementById("portcullis-interaction").textContent);
  const $ = (id) => document.getElementById(id);
  const failureBox = $("failure");
  const status = $("status");
  const connect = $("connect");
  const factorForm = $("factor-form");
  const factorInput = $("second-factor");
  const passkeyButton = $("use-passkey");
  // WebAuthn needs a secure context; without it (or in an old browser) only codes are offered.
  const PASSKEYS =
    typeof window.PublicKeyCredential === "function" &&
    !!navigator.credentials &&
    typeof navigator.credentials.get === "function";
  const clientLabel = view.client.client_name || view.client.client_id;
  const texts = view.texts || {};
  let lastFailure = null; // the failure on screen: named in the audit entry when the person goes back
  let pending = null; // {message, signature, device_id} of the last signature, re-sent with a second factor
  let signer = null; // {address, chainId} that made the last signature: whose passkeys to ask for

  function fill(list, items) {
    list.replaceChildren();
    for (const text of items) {
      const li = document.createElement("li");
      li.textContent = text;
      list.append(li);
    }
    list.hidden = items.length === 0;
  }

  // The compliance facts the tokens will carry, under their sentence; both hidden when there are none.
  function fillCompliance(list, intro, items) {
    fill(list, items || []);
    intro.hidden = list.hidden;
  }

  function chainName(id) {
    return (view.chain_names || {})[String(id)] || `chain ${id}`;
  }

  // EIP-55 keeps its case; the hex digits go in groups of four so a person can compare them.
  function groupedAddress(address) {
    const digits = String(address).replace(/^0x/i, "");
    const groups = digits.match(/.{1,4}/g) || [];
    return ["0x" + (groups[0] || ""), ...groups.slice(1)].join(" ");
  }

  // A failure in words (app/http/page_text.py): heading, what to do next, the technical reason folded away.
  // ``text`` is a page object {failure, title, message, back, technical}; ``fill`` replaces placeholders.
  function showFailure(text, fill) {
    const put = (value) => {
      let out = String(value || "");
      for (const [key, replacement] of Object.entries(fill || {})) out = out.split(`{${key}}`).join(replacement);
      return out;
    };
    lastFailure = text.failure || "other";
    $("failure-title").textContent = put(text.title);
    $("failure-message").textContent = put(text.message);
    $("failure-technical").textContent = put(text.technical);
    $("failure-details").open = false;
    $("back").textContent = put(text.back) || `Back to ${clientLabel}`;
    failureBox.hidden = false;
    $("cancel").hidden = true; // the failure's own Back button stands in for it
    if (text.failure === "expired") {
      connect.hidden = true;
      factorForm.hidden = true;
    }
    $("failure-title").focus();
  }

  // An answer without the page's words (an old server, a proxy's error page): still words, never a code.
  function showAnswer(body) {
    if (body && body.page && typeof body.page === "object") return showFailure(body.page);
    const error = String((body && body.error) || "error");
    const description = body && body.error_description ? String(body.error_description) : "";
    showFailure({
      failure: "other",
      title: "The sign-in did not work",
      message: `Something went wrong. Try again, or go back to ${clientLabel}.`,
      back: `Back to ${clientLabel}`,
      technical: description ? `${error}: ${description}` : error,
    });
  }

  function clearError() {
    failureBox.hidden = true;
    $("cancel").hidden = false;
    lastFailure = null;
  }

  function busy(on, text) {
    for (const button of document.querySelectorAll("button")) button.disabled = on;
    status.textContent = text || "";
  }

  function deviceId() {
    try {
      let id = window.localStorage.getItem("portcullis.device_id");
      if (!id || !/^[0-9a-f]{32}$/.test(id)) {
        id = PortcullisKeccak.toHex(window.crypto.getRandomValues(new Uint8Array(16)));
        window.localStorage.setItem("portcullis.device_id", id);
      }
      return id;
    } catch {
      return null; // storage disabled: sign in without a device id
    }
  }

  // EIP-4361 section "Message format" (ABNF); the scheme is always written out.
  function siweMessage(address, chainId) {
    const s = view.siwe;
    const lines = [`${s.scheme}://${s.domain} wants you to sign in with your Ethereum account:`, address, ""];
    if (s.statement) lines.push(s.statement, "");
    else lines.push("");
    lines.push(`URI: ${s.uri}`, `Version: ${s.version}`, `Chain ID: ${chainId}`, `Nonce: ${s.nonce}`);
    lines.push(`Issued At: ${s.issued_at}`);
    if (s.expiration_time) lines.push(`Expiration Time: ${s.expiration_time}`);
    return lines.join("\n");
  }

  async function post(url, body) {
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        // The page's policy is no-referrer, under which a POST's Origin is "null" (Fetch Standard 3.1);
        // same-origin sends the real origin to this server only, and never a Referer elsewhere.
        referrerPolicy: "same-origin",
        // The CSRF token the page was rendered with (app/http/csrf.py), bound to this browser's cookie.
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "X-CSRF-Token": String(view.csrf_token || ""),
        },
        body: JSON.stringify(body),
      });
    } catch {
      return { ok: false, body: { error: "network", error_description: "The server cannot be reached." } };
    }
    let parsed = null;
    try {
      parsed = await response.json();
    } catch {
      parsed = null;
    }
    if (parsed === null || typeof parsed !== "object") {
      parsed = { error: "server_error", error_description: `Unexpected answer (HTTP ${response.status}).` };
    }
    return { ok: response.ok, body: parsed };
  }

  // A failure the browser itself found (no wallet, wrong chain, 4001): worded by the server in advance.
  class PageFailure extends Error {
    constructor(failure, fill) {
      super(failure);
      this.failure = failure;
      this.fill = fill || {};
    }
  }

  async function wallet() {
    if (!window.ethereum || typeof window.ethereum.request !== "function") throw new PageFailure("no_wallet");
    const accounts = await window.ethereum.request({ method: "eth_requestAccounts" });
    if (!Array.isArray(accounts) || !/^0x[0-9a-fA-F]{40}$/.test(String(accounts[0]))) {
      throw new Error("The wallet did not share an account.");
    }
    const chainId = Number.parseInt(String(await window.ethereum.request({ method: "eth_chainId" })), 16);
    if (!view.siwe.chain_ids.includes(chainId)) {
      throw new PageFailure("wrong_chain", { wallet_chain: chainName(chainId), wallet_chain_id: String(chainId) });
    }
    return { address: PortcullisKeccak.toChecksumAddress(accounts[0]), chainId };
  }

  function showThrown(exc) {
    if (exc instanceof PageFailure && texts[exc.failure]) return showFailure(texts[exc.failure], exc.fill);
    if (exc && exc.code === 4001 && texts.rejected_signature) return showFailure(texts.rejected_signature);
    showAnswer({ error: "wallet_error", error_description: String((exc && exc.message) || exc) });
  }

  async function signIn() {
    clearError();
    busy(true, "Waiting for your wallet…");
    try {
      const { address, chainId } = await wallet();
      const message = siweMessage(address, chainId);
      const hex = "0x" + PortcullisKeccak.toHex(new TextEncoder().encode(message));
      const signature = await window.ethereum.request({ method: "personal_sign", params: [hex, address] });
      pending = { message, signature: String(signature), device_id: deviceId() };
      signer = { address, chainId };
      await submit(pending);
    } catch (exc) {
      busy(false);
      showThrown(exc);
    }
  }

  async function submit(body) {
    busy(true, "Signing in…");
    const answer = await post(view.endpoints.signin, body);
    busy(false);
    if (answer.ok && answer.body.consent) return showConsent(answer.body.consent);
    if (answer.body.error === "insufficient_user_authentication") return askSecondFactor();
    showAnswer(answer.body);
  }

  function askSecondFactor() {
    clearError();
    factorForm.hidden = false;
    connect.hidden = true;
    passkeyButton.hidden = !PASSKEYS;
    factorInput.value = "";
    factorInput.focus();
  }

  async function submitFactor(event) {
    event.preventDefault();
    clearError();
    const code = factorInput.value.replace(/\s+/g, "");
    if (!pending || !code) {
      return showFailure(texts.second_factor_missing);
    }
    const type = /^\d{6}$/.test(code) ? "totp" : "recovery";
    await submit({ ...pending, second_factor: { type, code } });
  }

  // The subject passkeys are registered to: did:pkh (CAIP-10) as app.oidc.tokens.did_pkh mints it, with
  // the EIP-55 address and the chain id of the message just signed.
  function subject() {
    return `did:pkh:eip155:${signer.chainId}:${signer.address}`;
  }

  // Why navigator.credentials.get failed (the words are app/http/page_text.py's).
  function passkeyProblem(exc) {
    const name = exc && exc.name ? String(exc.name) : "Error";
    if (name === "NotAllowedError" || name === "AbortError") return showFailure(texts.passkey_not_used);
    showFailure(texts.passkey_unsupported, { error_name: name });
  }

  async function usePasskey() {
    clearError();
    if (!pending || !signer) return connect.focus();
    busy(true, "Asking for a passkey challenge…");
    const options = await post(view.endpoints.webauthn_assertion, { subject: subject() });
    if (!options.ok) {
      busy(false);
      // The API answers the same for an unknown wallet and for one without a passkey.
      if (options.body.error === "no_factor_enrolled") showFailure(texts.no_passkey);
      else showAnswer(options.body);
      return factorInput.focus();
    }
    let credential;
    busy(true, "Waiting for your passkey…");
    try {
      credential = await navigator.credentials.get({ publicKey: PortcullisPasskey.requestOptions(options.body) });
      if (!credential) throw Object.assign(new Error("no credential"), { name: "NotAllowedError" });
    } catch (exc) {
      busy(false);
      passkeyProblem(exc);
      return factorInput.focus();
    }
    const answer = PortcullisPasskey.assertionJson(credential);
    await submit({ ...pending, second_factor: { type: "webauthn", credential: answer } });
  }

  function showConsent(consent) {
    $("signin").hidden = true;
    factorForm.hidden = true;
    clearError();
    const name = consent.client.client_name || consent.client.client_id;
    $("consent-client").textContent = name;
    $("consent-client-label").textContent = name;
    $("consent-domain").textContent = consent.client.domain || view.client.domain || "";
    $("consent-account").textContent = groupedAddress(consent.account);
    $("consent-account").setAttribute("aria-label", `Wallet address ${consent.account}`);
    $("consent-chain").textContent = chainName(consent.chain_id);
    fill($("consent-scopes"), (consent.scopes || []).map((s) => s.description || s.scope));
    fillDetails($("consent-details"), consent.authorization_details || []);
    fillCompliance($("consent-compliance"), $("consent-compliance-intro"), consent.compliance);
    $("consent-lifetime").textContent = consent.lifetime || "";
    $("consent").hidden = false;
    $("consent-heading").focus();
  }

  // Each detail in words; under it, where the policy narrowed it: what was asked, what is granted, why.
  function fillDetails(list, details) {
    list.replaceChildren();
    for (const d of details) {
      const li = document.createElement("li");
      li.textContent = d.summary || d.type;
      for (const line of d.narrowed || []) {
        const p = document.createElement("p");
        p.className = "narrowed";
        p.textContent = line;
        li.append(p);
      }
      list.append(li);
    }
    list.hidden = details.length === 0;
  }

  // "Back to the client": the server ends the sign-in and answers the client's redirect with
  // error=access_denied, state and iss, so the app is not left waiting.
  async function goBack() {
    busy(true, `Returning to ${clientLabel}…`);
    const answer = await post(view.endpoints.back, lastFailure ? { failure: lastFailure } : {});
    if (answer.ok && typeof answer.body.redirect_to === "string") {
      window.location.assign(answer.body.redirect_to);
      return;
    }
    busy(false);
    showAnswer(answer.body);
  }

  async function decide(approve) {
    clearError();
    busy(true, approve ? "Allowing…" : "Denying…");
    const answer = await post(view.endpoints.consent, { approve });
    if (answer.ok && typeof answer.body.redirect_to === "string") {
      status.textContent = "Returning to the app…";
      window.location.assign(answer.body.redirect_to);
      return;
    }
    busy(false);
    showAnswer(answer.body);
  }

  $("client-name").textContent = clientLabel;
  $("client-label").textContent = clientLabel;
  $("client-domain").textContent = view.client.domain || "";
  $("operator-line").textContent = `Run by ${view.operator}, through Portcullis`;
  $("chain-names").textContent = view.siwe.chain_ids.map(chainName).join(" or ");
  $("cancel").textContent = `Back to ${clientLabel}`;
  fill($("scope-list"), (view.scopes || []).map((s) => s.description || s.scope));
  fill($("detail-list"), (view.authorization_details || []).map((d) => d.summary || d.type));
  fillCompliance($("compliance-list"), $("compliance-intro"), view.compliance);
  $("step-up-note").hidden = !view.step_up;
  connect.addEventListener("click", signIn);
  factorForm.addEventListener("submit", submitFactor);
  passkeyButton.addEventListener("click", usePasskey);
  $("allow").addEventListener("click", () => decide(true));
  $("deny").addEventListener("click", () => decide(false));
  $("cancel").addEventListener("click", goBack);
  $("back").addEventListener("click", goBack);
})();
