// The in-dApp path: the page asks for a nonce, writes the EIP-4361 message itself, has the wallet sign it
// (EIP-191 personal_sign) and sends both to /siwe/verify as the registered public client (siwe_domains).

// EIP-4361 section "Message format": an http dApp puts its scheme before the domain (no scheme: https).
export function buildMessage(offer, address, statement) {
  const origin = offer.scheme === "https" ? offer.domain : `${offer.scheme}://${offer.domain}`;
  const lines = [
    `${origin} wants you to sign in with your Ethereum account:`,
    address,
    "",
    statement,
    "",
    `URI: ${offer.uri}`,
    "Version: 1",
    `Chain ID: ${offer.chain_id}`,
    `Nonce: ${offer.nonce}`,
    `Issued At: ${offer.issued_at}`,
    `Expiration Time: ${offer.expiration_time}`,
  ];
  return lines.join("\n");
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(answer.error_description ?? `HTTP ${response.status}`);
    Object.assign(error, { status: response.status, error: answer.error, body: answer });
    throw error;
  }
  return answer;
}

export function nonce(as, config) {
  return post(as.siwe_nonce_endpoint, { client_id: config.client_id });
}

export function verify(as, config, { message, signature, scope, authorizationDetails }) {
  return post(as.siwe_verify_endpoint, {
    client_id: config.client_id,
    message,
    signature,
    scope,
    authorization_details: authorizationDetails,
  });
}
