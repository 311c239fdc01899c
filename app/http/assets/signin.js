// The hosted sign-in page: EIP-1193 wallet -> EIP-4361 message -> personal_sign -> POST signin ->
// (second factor: a code, or a passkey through WebAuthn) -> consent -> redirect. Text from the server is
// only ever set with textContent.
(() => {
  "use strict";
  const view = JSON.parse(document.getElementById("portcullis-interaction").textContent);
  const $ = (id) => document.getElementById(id);
  const errorBox = $("error");
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
  // Errors after which this nonce cannot succeed: the user has to start again from the app.
  const RESTART = new Set(["nonce_mismatch", "expired_message", "message_too_old", "interaction_expired"]);
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

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = false;
  }

  function clearError() {
    errorBox.textContent = "";
    errorBox.hidden = true;
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

  function explain(body) {
    const error = String(body.error || "error");
    const description = body.error_description ? String(body.error_description) : "";
    if (RESTART.has(error) || /expired/i.test(description)) {
      connect.hidden = true;
      factorForm.hidden = true;
      return `This sign-in request has expired. Go back to ${clientLabel} and start again.`;
    }
    return description ? `${description} (${error})` : error;
  }

  async function wallet() {
    if (!window.ethereum || typeof window.ethereum.request !== "function") {
      throw new Error("No Ethereum wallet was found in this browser.");
    }
    const accounts = await window.ethereum.request({ method: "eth_requestAccounts" });
    if (!Array.isArray(accounts) || !/^0x[0-9a-fA-F]{40}$/.test(String(accounts[0]))) {
      throw new Error("The wallet did not share an account.");
    }
    const chainId = Number.parseInt(String(await window.ethereum.request({ method: "eth_chainId" })), 16);
    if (!view.siwe.chain_ids.includes(chainId)) {
      const wanted = view.siwe.chain_ids.join(" or ");
      throw new Error(`Your wallet is on chain ${chainId}: switch your wallet to chain ${wanted}, then try again.`);
    }
    return { address: PortcullisKeccak.toChecksumAddress(accounts[0]), chainId };
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
      showError(exc && exc.code === 4001 ? "The request was rejected in the wallet." : String(exc.message || exc));
    }
  }

  async function submit(body) {
    busy(true, "Signing in…");
    const answer = await post(view.endpoints.signin, body);
    busy(false);
    if (answer.ok && answer.body.consent) return showConsent(answer.body.consent);
    if (answer.body.error === "insufficient_user_authentication") return askSecondFactor();
    showError(explain(answer.body));
  }

  function askSecondFactor() {
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
    if (!pending || !code) return showError("Enter the code from your authenticator app or a recovery code.");
    const type = /^\d{6}$/.test(code) ? "totp" : "recovery";
    await submit({ ...pending, second_factor: { type, code } });
  }

  // The subject passkeys are registered to: did:pkh (CAIP-10) as app.oidc.tokens.did_pkh mints it, with
  // the EIP-55 address and the chain id of the message just signed.
  function subject() {
    return `did:pkh:eip155:${signer.chainId}:${signer.address}`;
  }

  // Why navigator.credentials.get failed, in words. The browser does not say whether a cancel, a timeout, a
  // failed PIN or biometric check or an unknown credential was the cause (WebAuthn L2, "Authentication
  // Ceremony Privacy"), and neither can we.
  function passkeyProblem(exc) {
    const name = exc && exc.name ? String(exc.name) : "Error";
    if (name === "NotAllowedError" || name === "AbortError") {
      return (
        "The passkey was not used: the request was cancelled, timed out or not verified. " +
        "Try again, or enter a code instead."
      );
    }
    return `Your browser could not use a passkey here (${name}). Enter a code instead.`;
  }

  async function usePasskey() {
    clearError();
    if (!pending || !signer) return showError("Sign in with your wallet first.");
    busy(true, "Asking for a passkey challenge…");
    const options = await post(view.endpoints.webauthn_assertion, { subject: subject() });
    if (!options.ok) {
      busy(false);
      // The API answers the same for an unknown wallet and for one without a passkey.
      showError(
        options.body.error === "no_factor_enrolled"
          ? "No passkey is registered for this wallet. Enter a code instead."
          : explain(options.body),
      );
      return factorInput.focus();
    }
    let credential;
    busy(true, "Waiting for your passkey…");
    try {
      credential = await navigator.credentials.get({ publicKey: PortcullisPasskey.requestOptions(options.body) });
      if (!credential) throw Object.assign(new Error("no credential"), { name: "NotAllowedError" });
    } catch (exc) {
      busy(false);
      showError(passkeyProblem(exc));
      return factorInput.focus();
    }
    const answer = PortcullisPasskey.assertionJson(credential);
    await submit({ ...pending, second_factor: { type: "webauthn", credential: answer } });
  }

  function showConsent(consent) {
    $("signin").hidden = true;
    factorForm.hidden = true;
    $("consent-client").textContent = consent.client.client_name || consent.client.client_id;
    $("consent-account").textContent = consent.account;
    $("consent-chain").textContent = String(consent.chain_id);
    fill($("consent-scopes"), (consent.scopes || []).map((s) => s.description || s.scope));
    fill(
      $("consent-details"),
      (consent.authorization_details || []).map((d) => d.summary || d.type),
    );
    fillCompliance($("consent-compliance"), $("consent-compliance-intro"), consent.compliance);
    $("consent").hidden = false;
    $("allow").focus();
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
    showError(explain(answer.body));
  }

  $("client-name").textContent = clientLabel;
  fill($("scope-list"), (view.scopes || []).map((s) => s.description || s.scope));
  fill($("detail-list"), (view.authorization_details || []).map((d) => d.summary || d.type));
  fillCompliance($("compliance-list"), $("compliance-intro"), view.compliance);
  $("step-up-note").hidden = !view.step_up;
  connect.addEventListener("click", signIn);
  factorForm.addEventListener("submit", submitFactor);
  passkeyButton.addEventListener("click", usePasskey);
  $("allow").addEventListener("click", () => decide(true));
  $("deny").addEventListener("click", () => decide(false));
})();
