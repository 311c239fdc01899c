// A test wallet: a fixed secp256k1 key in Node, reached from the page through an injected EIP-1193 provider
// (window.ethereum.request). It answers eth_requestAccounts, eth_chainId and personal_sign only, and records
// every method the page asks for so the test can check the page uses nothing else.
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { bytesToHex, hexToBytes, utf8ToBytes, concatBytes } from "@noble/hashes/utils.js";

export function checksumAddress(lowerHex) {
  const hash = bytesToHex(keccak_256(utf8ToBytes(lowerHex)));
  let out = "0x";
  for (let i = 0; i < 40; i++) out += parseInt(hash[i], 16) >= 8 ? lowerHex[i].toUpperCase() : lowerHex[i];
  return out;
}

export class TestWallet {
  constructor(privateKeyHex, chainId) {
    this.key = hexToBytes(privateKeyHex.replace(/^0x/, ""));
    const pub = secp256k1.getPublicKey(this.key, false); // 0x04 || x || y
    this.address = checksumAddress(bytesToHex(keccak_256(pub.slice(1)).slice(12)));
    this.chainId = chainId;
    this.calls = [];
    this.signed = [];
    this.rejections = 0; // how many personal_sign requests to refuse first, as a user clicking "Reject" would
  }

  // EIP-191 version 0x45 ("personal_sign"): keccak256("\x19Ethereum Signed Message:\n" + len + message).
  personalSign(messageHex, address) {
    if (address.toLowerCase() !== this.address.toLowerCase()) throw rpcError(4100, "unknown account");
    const message = hexToBytes(messageHex.replace(/^0x/, ""));
    const prefix = utf8ToBytes(`\x19Ethereum Signed Message:\n${message.length}`);
    const digest = keccak_256(concatBytes(prefix, message));
    const raw = secp256k1.sign(digest, this.key, { prehash: false, format: "recovered", lowS: true });
    const sig = secp256k1.Signature.fromBytes(raw, "recovered");
    const hex = (n) => n.toString(16).padStart(64, "0");
    this.signed.push(new TextDecoder().decode(message));
    return "0x" + hex(sig.r) + hex(sig.s) + (27 + sig.recovery).toString(16);
  }

  handle(method, params) {
    this.calls.push(method);
    switch (method) {
      case "eth_requestAccounts":
        return [this.address.toLowerCase()]; // wallets often answer lower case: the page must checksum it
      case "eth_chainId":
        return "0x" + this.chainId.toString(16);
      case "personal_sign":
        if (this.rejections > 0) {
          this.rejections -= 1;
          throw rpcError(4001, "User rejected the request."); // EIP-1193 userRejectedRequest
        }
        return this.personalSign(params[0], params[1]);
      default:
        throw rpcError(4200, `unsupported method ${method}`);
    }
  }

  // Expose the wallet to every page of the browser context before any page script runs.
  async install(context) {
    await context.exposeBinding("__portcullisTestWallet", (_source, method, params) => {
      try {
        return { result: this.handle(method, params) };
      } catch (exc) {
        return { error: { code: exc.code ?? -32603, message: String(exc.message ?? exc) } };
      }
    });
    await context.addInitScript(() => {
      window.ethereum = {
        isPortcullisTestWallet: true,
        async request({ method, params }) {
          const answer = await window.__portcullisTestWallet(method, params ?? []);
          if (answer.error) throw Object.assign(new Error(answer.error.message), { code: answer.error.code });
          return answer.result;
        },
      };
    });
  }
}

function rpcError(code, message) {
  return Object.assign(new Error(message), { code });
}
