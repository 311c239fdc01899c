// The hosted delegation page: connect an EIP-1193 wallet and sign in (EIP-4361), describe a bot's access in
// plain words, sign the EIP-4361 message carrying its EIP-5573 ReCap, then list and revoke delegations.
// The ReCap profile is docs/DELEGATION.md's: scopes as urn:portcullis:scope:<scope> / oauth/token, one
// derivatives_trade detail as urn:portcullis:authorization_details:derivatives_trade.
(() => {
  "use strict";
  const view = JSON.parse(document.getElementById("portcullis-delegations").textContent);
  const $ = (id) => document.getElementById(id);
  const PREAMBLE = "I further authorize the stated URI to perform the following actions on my behalf:";
  const state = { address: null, chainId: null, token: null, pending: null };

  function showError(text) {
    $("error").textContent = text;
    $("error").hidden = false;
  }
  function status(text) {
    $("status").textContent = text;
  }
  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  async function call(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    let response;
    try {
      // no-referrer would make a POST's Origin "null"; same-origin sends the real origin to this server only.
      response = await fetch(path, {
        method,
        headers,
        credentials: "same-origin",
        referrerPolicy: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
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

  function failure(body) {
    return `${body.error}: ${body.error_description || ""}`;
  }

  async function sign(text) {
    const hex = "0x" + PortcullisKeccak.toHex(new TextEncoder().encode(text));
    return window.ethereum.request({ method: "personal_sign", params: [hex, state.address] });
  }

  function siweText(offer, statement, uri, extra) {
    const origin = offer.scheme === "https" ? offer.domain : `${offer.scheme}://${offer.domain}`;
    const lines = [`${origin} wants you to sign in with your Ethereum account:`, state.address, ""];
    if (statement) lines.push(statement, "");
    else lines.push("");
    lines.push(`URI: ${uri}`, "Version: 1", `Chain ID: ${state.chainId}`, `Nonce: ${offer.nonce}`);
    lines.push(`Issued At: ${offer.issued_at}`);
    for (const line of extra) lines.push(line);
    return lines.join("\n");
  }

  async function connect() {
    clearError();
    if (!window.ethereum || typeof window.ethereum.request !== "function") {
      showError("No wallet found: install or unlock an Ethereum wallet extension.");
      return;
    }
    try {
      const accounts = await window.ethereum.request({ method: "eth_requestAccounts" });
      state.address = PortcullisKeccak.toChecksumAddress(accounts[0]);
      state.chainId = Number.parseInt(String(await window.ethereum.request({ method: "eth_chainId" })), 16);
      const nonce = await call("POST", "/siwe/nonce", {});
      if (!nonce.ok) return showError(failure(nonce.body));
      const text = siweText(nonce.body, "Sign in to manage my trading bots.", nonce.body.uri, []);
      status("Sign the sign-in message in your wallet.");
      const signature = await sign(text);
      const reply = await call("POST", "/siwe/verify", { message: text, signature });
      if (!reply.ok) return showError(failure(reply.body));
      state.token = reply.body.access_token;
    } catch (exc) {
      status("");
      return showError(exc && exc.code === 4001 ? "You rejected the signature." : String(exc.message || exc));
    }
    $("account-address").textContent = state.address;
    $("account-chain").textContent = String(state.chainId);
    $("account").hidden = false;
    $("create").hidden = false;
    $("mine").hidden = false;
    status("Signed in.");
    await refresh();
  }

  // RFC 7638: the SHA-256 of the required members in lexicographic order, base64url.
  async function thumbprint(jwk) {
    const members = jwk.kty === "EC" ? ["crv", "kty", "x", "y"] : jwk.kty === "OKP" ? ["crv", "kty", "x"] : null;
    if (members === null) throw new Error("the key must be an EC (P-256) or OKP (Ed25519) JWK");
    if ("d" in jwk) throw new Error("that is a private key: paste the bot's public key only");
    const parts = members.map((m) => {
      if (typeof jwk[m] !== "string" || !jwk[m]) throw new Error(`the JWK has no ${m}`);
      return `${JSON.stringify(m)}:${JSON.stringify(jwk[m])}`;
    });
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`{${parts.join(",")}}`));
    return base64url(new Uint8Array(digest));
  }

  function base64url(bytes) {
    let raw = "";
    for (const b of bytes) raw += String.fromCharCode(b);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // JSON with every object's keys in JavaScript's default sort order (EIP-5573).
  function canonical(value) {
    if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
    if (value && typeof value === "object") {
      return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
    }
    return JSON.stringify(value);
  }

  function attenuations(plan) {
    const att = {};
    for (const scope of plan.scopes) att[`urn:portcullis:scope:${scope}`] = { "oauth/token": [{}] };
    if (plan.scopes.includes("perps:trade")) {
      const note = {
        instruments: [plan.instrument],
        max_leverage: plan.leverage,
        max_notional: { amount: plan.notional, currency: "USDC" },
      };
      att["urn:portcullis:authorization_details:derivatives_trade"] = {
        "derivatives_trade/cancel_order": [note],
        "derivatives_trade/place_order": [note],
      };
    }
    return att;
  }

  function translate(att) {
    let out = PREAMBLE;
    let n = 1;
    for (const resource of Object.keys(att).sort()) {
      const groups = new Map();
      for (const ability of Object.keys(att[resource]).sort()) {
        const [ns, name] = ability.split("/");
        if (!groups.has(ns)) groups.set(ns, []);
        groups.get(ns).push(name);
      }
      for (const [ns, names] of groups) {
        out += ` (${n}) '${ns}': ${names.map((x) => `'${x}'`).join(", ")} for '${resource}'.`;
        n += 1;
      }
    }
    return out;
  }

  function plainWords(plan) {
    const until = new Date(Date.now() + plan.days * 86400000);
    const items = [`The bot with key ${plan.jkt} acts for ${state.address}, with its own key only.`];
    if (plan.scopes.includes("perps:trade")) {
      items.push(
        `It may place and cancel orders on ${plan.instrument}, at most ${plan.leverage}x leverage and ` +
          `${plan.notional} USDC notional per order.`,
      );
    }
    if (plan.scopes.includes("portfolio:read")) items.push("It may read your balances, positions and orders.");
    items.push(`Until ${until.toISOString().slice(0, 10)}, unless you revoke it first. It can never withdraw.`);
    items.push("The trading policy still applies: it never gets more than your wallet may have at that moment.");
    return items;
  }

  async function review(event) {
    event.preventDefault();
    clearError();
    let jwk;
    try {
      jwk = JSON.parse($("bot-jwk").value);
    } catch {
      return showError("The bot's key is not JSON.");
    }
    const scopes = [];
    if ($("scope-trade").checked) scopes.push("perps:trade");
    if ($("scope-portfolio").checked) scopes.push("portfolio:read");
    if (!scopes.length) return showError("Choose at least one thing the bot may do.");
    const days = Number.parseInt($("days").value, 10);
    if (!(days >= 1 && days <= view.max_days)) return showError(`Choose 1 to ${view.max_days} days.`);
    const leverage = Number.parseInt($("leverage").value, 10);
    const notional = $("notional").value.trim();
    if (!/^(0|[1-9][0-9]{0,29})(\.[0-9]{1,18})?$/.test(notional)) return showError("The notional is not a decimal amount.");
    let jkt;
    try {
      jkt = await thumbprint(jwk);
    } catch (exc) {
      return showError(String(exc.message || exc));
    }
    state.pending = { jkt, scopes, days, leverage, notional, instrument: $("instrument").value.trim() };
    const list = $("review-list");
    list.replaceChildren();
    for (const item of plainWords(state.pending)) {
      const li = document.createElement("li");
      li.textContent = item;
      list.append(li);
    }
    $("review").hidden = false;
  }

  async function signDelegation() {
    clearError();
    const plan = state.pending;
    if (!plan) return;
    const nonce = await call("POST", "/siwe/nonce", {});
    if (!nonce.ok) return showError(failure(nonce.body));
    const att = attenuations(plan);
    const recap = "urn:recap:" + base64url(new TextEncoder().encode(canonical({ att, prf: [] })));
    const expires = new Date(Date.parse(nonce.body.issued_at) + plan.days * 86400000).toISOString();
    const text = siweText(
      nonce.body,
      `Delegate to my trading bot. ${translate(att)}`,
      `urn:ietf:params:oauth:jwk-thumbprint:sha-256:${plan.jkt}`,
      [`Expiration Time: ${expires}`, "Resources:", `- ${recap}`],
    );
    let signature;
    try {
      status("Sign the delegation in your wallet.");
      signature = await sign(text);
    } catch (exc) {
      status("");
      return showError(exc && exc.code === 4001 ? "You rejected the signature." : String(exc.message || exc));
    }
    const reply = await call("POST", "/delegations", { message: text, signature });
    if (!reply.ok) return showError(failure(reply.body));
    $("review").hidden = true;
    state.pending = null;
    const refused = reply.body.granted.refused.map((r) => `${r.item} (${r.reason})`);
    status(refused.length ? `Delegation created; the policy refuses: ${refused.join("; ")}` : "Delegation created.");
    await refresh();
  }

  async function refresh() {
    const reply = await call("GET", "/delegations");
    if (!reply.ok) return showError(failure(reply.body));
    const list = $("delegation-list");
    list.replaceChildren();
    $("none").hidden = reply.body.delegations.length > 0;
    for (const d of reply.body.delegations) {
      const li = document.createElement("li");
      li.className = "delegation";
      li.dataset.id = d.delegation_id;
      li.dataset.state = d.state;
      const until = new Date(d.expires_at * 1000).toISOString().slice(0, 16).replace("T", " ");
      const text = document.createElement("span");
      text.textContent = `Bot ${d.delegate_jkt}: ${d.scope}, until ${until} UTC (${d.state.replace(/_/g, " ")})`;
      li.append(text);
      if (d.state === "active" || d.state === "not_yet_valid") {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "secondary revoke";
        button.textContent = "Revoke";
        button.addEventListener("click", () => revoke(d.delegation_id));
        li.append(" ", button);
      }
      list.append(li);
    }
  }

  async function revoke(id) {
    clearError();
    const reply = await call("DELETE", `/delegations/${encodeURIComponent(id)}`);
    if (!reply.ok) return showError(failure(reply.body));
    status("Delegation revoked: the bot gets no new token, and its current ones are dead at introspection.");
    await refresh();
  }

  $("connect").addEventListener("click", connect);
  $("create-form").addEventListener("submit", review);
  $("sign").addEventListener("click", signDelegation);
  $("cancel").addEventListener("click", () => {
    $("review").hidden = true;
  });
})();
