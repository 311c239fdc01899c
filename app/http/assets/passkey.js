// WebAuthn passkey step-up for the hosted page: the JSON forms of WebAuthn Level 3 written out by hand,
// for browsers without PublicKeyCredential.parseRequestOptionsFromJSON (section 5.1.10) or
// PublicKeyCredential.toJSON (section 5.1.8). Binary fields travel as base64url without padding (RFC 4648
// section 5), which is what the server's parser (app.mfa.webauthn, the webauthn package) reads.
const PortcullisPasskey = (() => {
  "use strict";

  function bytesOf(data) {
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    throw new TypeError("expected an ArrayBuffer or a typed array");
  }

  function base64urlEncode(data) {
    let binary = "";
    for (const byte of bytesOf(data)) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function base64urlDecode(text) {
    if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
      throw new TypeError("expected a base64url string");
    }
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
    return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  }

  // PublicKeyCredentialRequestOptionsJSON -> PublicKeyCredentialRequestOptions: the challenge and each
  // allowed credential id become bytes; every other member passes through as the server wrote it.
  function requestOptions(json) {
    if (!json || typeof json !== "object") throw new TypeError("expected the request options JSON");
    const options = { ...json, challenge: base64urlDecode(json.challenge) };
    if (Array.isArray(json.allowCredentials)) {
      options.allowCredentials = json.allowCredentials.map((c) => ({ ...c, id: base64urlDecode(c.id) }));
    }
    return options;
  }

  // A PublicKeyCredential with an AuthenticatorAssertionResponse -> AuthenticationResponseJSON.
  function assertionJson(credential) {
    const r = credential.response;
    const response = {
      clientDataJSON: base64urlEncode(r.clientDataJSON),
      authenticatorData: base64urlEncode(r.authenticatorData),
      signature: base64urlEncode(r.signature),
    };
    if (r.userHandle) response.userHandle = base64urlEncode(r.userHandle);
    const json = {
      id: credential.id,
      rawId: base64urlEncode(credential.rawId),
      type: credential.type,
      response,
      clientExtensionResults:
        typeof credential.getClientExtensionResults === "function" ? credential.getClientExtensionResults() : {},
    };
    if (typeof credential.authenticatorAttachment === "string") {
      json.authenticatorAttachment = credential.authenticatorAttachment;
    }
    return json;
  }

  return Object.freeze({ base64urlEncode, base64urlDecode, requestOptions, assertionJson });
})();
