// The demo dApp: wallet discovery, the two sign-in paths, the session in words, and the sample venue API.
import * as wallets from "./wallets.js";
import * as siwe from "./siwe.js";
import * as oidc from "./oidc.js";
import * as words from "./words.js";

const SESSION = "portcullis-demo.session";
const LOGOUT = "portcullis-demo.logout";
const MFA = "urn:portcullis:acr:wallet+mfa";
const SIGNIN_SCOPE = "openid compliance portfolio:read perps:trade";
const STATEMENT = "Sign in to the Portcullis demo dApp.";
const REFRESH_LEAD_SECONDS = 30; // refresh this long before the access token expires

const $ = (id) => document.getElementById(id);
const state = { config: null, as: null, wallet: null, account: null, session: null, refreshTimer: null };

// What the dApp asks to trade: the policy narrows it to what the wallet's investor class allows (e.g. a
// professional client gets 20x, not 50x), and the token says what was granted.
const TRADE_DETAIL = {
  type: "derivatives_trade",
  actions: ["place_order", "cancel_order"],
  instruments: ["ETH-PERP", "BTC-PERP"],
  order_types: ["market", "limit"],
  max_leverage: 50,
  max_notional: { amount: "2000000", currency: "USD" },
};
const ORDER = { instrument: "ETH-PERP", side: "buy", order_type: "limit", notional: "1000", currency: "USD" };

function status(text) {
  $("status").textContent = text;
}

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = !text;
}

function decodeJwt(token) {
  // Display only: the API validates the token, the page just reads what it says.
  const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
}

function saveSession(session) {
  state.session = session;
  if (session) sessionStorage.setItem(SESSION, JSON.stringify(session));
  else sessionStorage.removeItem(SESSION);
  render();
}

function sessionFrom(tokens, claims, path, address) {
  return {
    path,
    address: address ?? claims.sub.split(":").at(-1),
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token ?? null,
    id_token: tokens.id_token,
    dpop: String(tokens.token_type).toLowerCase() === "dpop",
    expires_at: Math.floor(Date.now() / 1000) + Number(tokens.expires_in ?? 0),
    scope: tokens.scope ?? "",
    authorization_details: tokens.authorization_details ?? [],
    claims,
    stepup: null,
  };
}

// ------------------------------------------------------------------ wallets

async function listWallets() {
  const found = await wallets.discoverWallets();
  const ul = $("wallets");
  ul.replaceChildren();
  $("no-wallet").hidden = found.length > 0;
  for (const wallet of found) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "wallet";
    button.dataset.rdns = wallet.info.rdns;
    const icon = document.createElement("img");
    icon.src = wallet.info.icon;
    icon.alt = "";
    const name = document.createElement("span");
    name.textContent = wallet.info.name;
    button.append(icon, name);
    button.addEventListener("click", () => useWallet(wallet));
    li.append(button);
    ul.append(li);
  }
}

async function useWallet(wallet) {
  showError("");
  try {
    status(`Asking ${wallet.info.name} for an account...`);
    const { address, chainId } = await wallets.connect(wallet);
    state.wallet = wallet;
    state.account = address;
    showWallet(chainId);
  } catch (exc) {
    status("");
    showError(wallets.walletErrorText(exc));
  }
}

function showWallet(chainId) {
  $("wallet-connected").hidden = false;
  $("wallet-address").textContent = state.account;
  $("wallet-name").textContent = state.wallet.info.name;
  $("wallet-chain").textContent = String(chainId);
  const wrong = chainId !== state.config.chain_id;
  $("wrong-chain").hidden = !wrong;
  $("wrong-chain-text").textContent = wrong
    ? `Your wallet is on chain ${chainId}; this venue signs in on chain ${state.config.chain_id}` +
      ` (the Portcullis development chain). Switch your wallet to it to sign in.`
    : "";
  $("signin-siwe").disabled = wrong;
  status(wrong ? "Wrong network." : `Connected to ${state.wallet.info.name}.`);
}

async function switchChain() {
  showError("");
  try {
    showWallet(await wallets.switchChain(state.wallet, state.config));
  } catch (exc) {
    showError(wallets.walletErrorText(exc));
  }
}

// ------------------------------------------------------------------ sign-in, path 1: the hosted page

async function signInOidc() {
  showError("");
  status("Going to Portcullis' sign-in page...");
  try {
    await oidc.startSignIn(state.config, state.as, {
      scope: SIGNIN_SCOPE,
      authorizationDetails: [TRADE_DETAIL],
      purpose: { kind: "signin" },
    });
  } catch (exc) {
    status("");
    showError(`Could not start the sign-in: ${exc.error_description ?? exc.message}`);
  }
}

async function returnFromHostedPage(back) {
  try {
    const { tokens, claims, pending } = await oidc.finishSignIn(state.config, state.as, back);
    if (pending.kind === "stepup" && state.session) {
      state.session.stepup = sessionFrom(tokens, claims, "oidc");
      saveSession(state.session);
      status("Second factor confirmed: sending the withdrawal again.");
      await withdraw();
      return;
    }
    saveSession(sessionFrom(tokens, claims, "oidc"));
    status("Signed in through Portcullis' page.");
  } catch (exc) {
    showError(`The sign-in did not finish: ${exc.error_description ?? exc.message}`);
  }
}

// ------------------------------------------------------------------ sign-in, path 2: in this dApp

async function signInHere() {
  showError("");
  const wallet = state.wallet;
  try {
    status("Asking Portcullis for a nonce...");
    const offer = await siwe.nonce(state.as, state.config);
    const message = siwe.buildMessage(offer, state.account, STATEMENT);
    status("Sign the message in your wallet.");
    let signature;
    try {
      signature = await wallets.personalSign(wallet, state.account, message);
    } catch (exc) {
      status("");
      showError(wallets.walletErrorText(exc));
      return;
    }
    status("Checking the signature...");
    const tokens = await siwe.verify(state.as, state.config, {
      message,
      signature,
      scope: SIGNIN_SCOPE,
      authorizationDetails: [TRADE_DETAIL],
    });
    saveSession(sessionFrom(tokens, decodeJwt(tokens.id_token), "siwe", state.account));
    status("Signed in here, with the message this page wrote.");
  } catch (exc) {
    status("");
    showError(signInRefusal(exc));
  }
}

function signInRefusal(exc) {
  if (exc.error === "not_eligible") {
    return (
      "This wallet is not on the venue's list of verified accounts (the compliance registry). Finish" +
      ` verification with the operator, then try again. (${exc.message})`
    );
  }
  return `Sign-in refused: ${exc.message}${exc.error ? ` (${exc.error})` : ""}`;
}

// ------------------------------------------------------------------ the session, in words

function render() {
  const session = state.session;
  $("session").hidden = !session;
  $("trade").hidden = !session;
  clearTimeout(state.refreshTimer);
  if (!session) return;
  $("session-wallet").textContent = session.address;
  $("session-sub").textContent = session.claims.sub;
  $("session-path").textContent =
    session.path === "oidc"
      ? "through Portcullis' page (authorization code, PAR, PKCE, DPoP-bound tokens)"
      : "in this dApp (Sign-In with Ethereum at /siwe/verify)";
  const stepped = session.stepup
    ? `; for withdrawals until ${words.when(session.stepup.expires_at)}: ${words.acrText(session.stepup.claims.acr, session.stepup.claims.amr)}`
    : "";
  $("session-acr").textContent = words.acrText(session.claims.acr, session.claims.amr) + stepped;
  $("session-expiry").textContent =
    `expires ${words.when(session.expires_at)}` +
    (session.refresh_token ? `; renewed silently ${REFRESH_LEAD_SECONDS} s before` : "; no refresh token") +
    (session.dpop ? " (DPoP-bound to this tab's key)" : " (bearer)");
  fillList($("session-scopes"), session.scope.split(" ").filter(Boolean).map(words.scopeText));
  fillList($("session-details"), session.authorization_details.map(words.detailText));
  const access = decodeJwt(session.access_token);
  fillList($("session-compliance"), words.complianceText(session.claims.compliance ?? access.compliance));
  if (session.refresh_token) {
    const wait = Math.max(session.expires_at - REFRESH_LEAD_SECONDS - Date.now() / 1000, 5);
    state.refreshTimer = setTimeout(refreshNow, wait * 1000);
  }
}

function fillList(ul, items) {
  ul.replaceChildren(
    ...items.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }),
  );
}

async function refreshNow() {
  const session = state.session;
  if (!session?.refresh_token) return;
  try {
    const tokens = await oidc.refresh(state.config, state.as, session.refresh_token);
    const renewed = sessionFrom(tokens, tokens.id_token ? decodeJwt(tokens.id_token) : session.claims, session.path, session.address);
    renewed.refresh_token = tokens.refresh_token ?? session.refresh_token;
    renewed.id_token = tokens.id_token ?? session.id_token;
    renewed.stepup = session.stepup;
    saveSession(renewed);
    status(`Access token renewed; it now expires ${words.when(renewed.expires_at)}.`);
  } catch (exc) {
    showError(`Could not renew the access token: ${exc.error_description ?? exc.message}. Sign in again.`);
  }
}

// ------------------------------------------------------------------ the venue

async function call(method, path, body, session = state.session) {
  const { response, challenge } = await oidc.apiCall(state.config, state.as, session, method, path, body);
  const answer = await response.json().catch(() => ({}));
  return { status: response.status, answer, challenge };
}

function result(kind, text) {
  const box = $("result");
  const p = document.createElement("p");
  p.className = kind;
  p.textContent = text;
  box.replaceChildren(p);
  return box;
}

async function positions() {
  const { status: code, answer } = await call("GET", "/positions");
  if (code !== 200) return result("refused", refusal(code, answer));
  const rows = answer.positions.map((p) => `${p.instrument}: ${p.size}`);
  result("ok", rows.length ? `Your positions:\n${rows.join("\n")}` : "You have no open positions.");
}

async function order(leverage) {
  const { status: code, answer } = await call("POST", "/orders", { ...ORDER, leverage });
  if (code === 201) {
    result("ok", `Order accepted: ${answer.side} ${answer.instrument} ${answer.leverage}x, ${answer.notional} ${answer.currency} (order ${answer.id}, ${answer.status}).`);
  } else {
    result("refused", refusal(code, answer));
  }
}

function refusal(code, answer) {
  const why = answer.error_description ?? "no reason given";
  if (answer.error === "insufficient_authorization_details") {
    return `Order refused (HTTP ${code}): it is outside what you granted. ${why}`;
  }
  return `Refused (HTTP ${code}, ${answer.error ?? "error"}): ${why}`;
}

function withdrawal() {
  return { asset: "USDC", amount: "500", destination: `eip155:1:${state.session.address}` };
}

async function withdraw() {
  const session = state.session;
  const stepped = session.stepup && session.stepup.expires_at > Date.now() / 1000 ? session.stepup : null;
  const { status: code, answer } = await call("POST", "/withdrawals", withdrawal(), stepped ?? session);
  if (code === 201) {
    result("ok", `Withdrawal accepted: ${answer.amount} ${answer.asset} to ${answer.destination} (id ${answer.id}).`);
    return;
  }
  if (code === 401 && answer.error === "insufficient_user_authentication") {
    // RFC 9470: the API names the authentication it needs; the hosted page asks for it.
    const box = result(
      "refused",
      "This withdrawal needs a second factor. Portcullis will ask for your authenticator app's code or your" +
        ` passkey, then the withdrawal is sent again. (${answer.error_description})`,
    );
    const button = document.createElement("button");
    button.id = "step-up";
    button.type = "button";
    button.textContent = "Confirm with a second factor";
    button.addEventListener("click", () => stepUp(answer));
    box.append(button);
    return;
  }
  result("refused", refusal(code, answer));
}

async function stepUp(challenge) {
  const wanted = withdrawal();
  const extra = { acr_values: challenge.acr_values ?? MFA };
  if (challenge.max_age) extra.max_age = challenge.max_age;
  status("Going to Portcullis for the second factor...");
  try {
    await oidc.startSignIn(state.config, state.as, {
      scope: "openid vault:withdraw",
      authorizationDetails: [{ type: "withdrawal", asset: wanted.asset, max_amount: "1000", destinations: [wanted.destination] }],
      extra,
      purpose: { kind: "stepup" },
    });
  } catch (exc) {
    status("");
    showError(`Could not start the step-up: ${exc.error_description ?? exc.message}`);
  }
}

async function signOut() {
  const session = state.session;
  const logoutState = oidc.generateState();
  sessionStorage.setItem(LOGOUT, logoutState);
  saveSession(null);
  await oidc.forgetKeys();
  window.location.assign(oidc.logoutUrl(state.config, state.as, session.id_token, logoutState));
}

function returnFromLogout() {
  const url = new URL(window.location.href);
  const expected = sessionStorage.getItem(LOGOUT);
  if (!expected || url.searchParams.get("state") !== expected) return false;
  sessionStorage.removeItem(LOGOUT);
  window.history.replaceState(null, "", state.config.redirect_uri);
  status("You are signed out: Portcullis ended the session, and this tab forgot its tokens and key.");
  return true;
}

// ------------------------------------------------------------------ start

function guarded(fn) {
  return async () => {
    showError("");
    try {
      await fn();
    } catch (exc) {
      showError(`Something went wrong: ${exc.message}`);
    }
  };
}

async function start() {
  state.config = await (await fetch("config.json")).json();
  state.as = await oidc.discover(state.config);
  $("switch-chain").addEventListener("click", switchChain);
  $("signin-oidc").addEventListener("click", signInOidc);
  $("signin-siwe").addEventListener("click", signInHere);
  $("refresh").addEventListener("click", guarded(refreshNow));
  $("positions").addEventListener("click", guarded(positions));
  $("order-ok").addEventListener("click", guarded(() => order(5)));
  $("order-over").addEventListener("click", guarded(() => order(40)));
  $("withdraw").addEventListener("click", guarded(withdraw));
  $("signout").addEventListener("click", guarded(signOut));
  const kept = sessionStorage.getItem(SESSION);
  state.session = kept ? JSON.parse(kept) : null;
  render();
  await listWallets();
  const back = oidc.pendingReturn();
  if (back) await returnFromHostedPage(back);
  else returnFromLogout();
  document.body.dataset.ready = "true";
}

start().catch((exc) => showError(`The demo could not start: ${exc.message}`));
