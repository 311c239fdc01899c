// What the tokens say, in words: scopes, RFC 9396 authorization_details, compliance facts, acr/amr.

const SCOPES = {
  openid: "Sign in with your wallet (your subject is its did:pkh)",
  compliance: "Read your compliance record",
  "portfolio:read": "See your positions and orders",
  "perps:trade": "Trade perpetual futures",
  "vault:withdraw": "Withdraw funds",
};
const ACTIONS = {
  place_order: "place orders",
  amend_order: "change orders",
  cancel_order: "cancel orders",
  close_position: "close positions",
};
const ORDER_TYPES = {
  market: "market",
  limit: "limit",
  stop_market: "stop-market",
  stop_limit: "stop-limit",
  take_profit: "take-profit",
};
const CLASSES = { retail: "retail client", professional: "professional client", eligible_counterparty: "eligible counterparty" };
const ACR = {
  "urn:portcullis:acr:wallet": "your wallet's signature",
  "urn:portcullis:acr:wallet+mfa": "your wallet's signature and a second factor",
};
const AMR = { siwe: "wallet signature", otp: "one-time code", hwk: "passkey", user: "user verified", mfa: "two factors", swk: "software key", pop: "proof of possession" };

const list = (items) => (items.length < 2 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`);
const money = (amount, currency) => `${Number(amount).toLocaleString("en")} ${currency}`;

export function scopeText(scope) {
  return SCOPES[scope] ?? scope;
}

export function detailText(detail) {
  if (detail.type === "derivatives_trade") {
    const parts = [`May ${list((detail.actions ?? []).map((a) => ACTIONS[a] ?? a))}`];
    parts.push(`on ${list(detail.instruments ?? [])}`);
    if (detail.order_types) parts.push(`with ${list(detail.order_types.map((t) => ORDER_TYPES[t] ?? t))} orders`);
    if (detail.max_leverage) parts.push(`at up to ${detail.max_leverage}x leverage`);
    if (detail.max_notional) parts.push(`up to ${money(detail.max_notional.amount, detail.max_notional.currency)} in total`);
    return parts.join(" ");
  }
  if (detail.type === "withdrawal") {
    const amount = detail.max_amount ? `up to ${money(detail.max_amount, detail.asset)}` : detail.asset;
    return `May withdraw ${amount} to ${list(detail.destinations ?? [])}`;
  }
  return `${detail.type}: ${JSON.stringify(detail)}`;
}

export function when(value) {
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return date.toUTCString().replace("GMT", "UTC");
}

// The compliance claim (docs/POLICY.md, "Claims"): the whole record under the compliance scope, just the
// investor class and the record's end in the access token for a trading scope.
export function complianceText(compliance) {
  if (!compliance) return ["None: no scope asked for compliance facts."];
  if (compliance.source === "none") return ["None: this server runs without a compliance gate."];
  const out = [];
  if (compliance.investor_class) out.push(`Investor class: ${CLASSES[compliance.investor_class] ?? compliance.investor_class}`);
  if (compliance.residence) out.push(`Country of residence: ${compliance.residence}`);
  if (compliance.kyc_level !== undefined) out.push(`Identity checks (KYC) level: ${compliance.kyc_level}`);
  if (compliance.valid_until) out.push(`These facts hold until ${when(compliance.valid_until)} (when the record expires)`);
  if (compliance.chain_id) out.push(`Read from the compliance registry on chain ${compliance.chain_id}, block ${compliance.block}`);
  return out;
}

export function acrText(acr, amr) {
  const how = (amr ?? []).map((m) => AMR[m] ?? m);
  return `${ACR[acr] ?? acr} (acr ${acr}; amr: ${list(how)})`;
}
