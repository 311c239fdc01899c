// The demo dApp's test wallets: the suite's TestWallet (a real secp256k1 key in Node, EIP-191 signatures)
// behind an EIP-1193 provider that also switches chains (EIP-3326), announced through EIP-6963 under two
// names and icons, and kept at window.ethereum for pages that do not discover (the hosted sign-in page).
import { TestWallet } from "./wallet.mjs";

export const ICON_A =
  "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCAyNCAyNCI+PGNpcmNsZSBjeD0iMTIiIGN5PSIxMiIgcj0iMTAiIGZpbGw9IiNlMjc2MWIiLz48L3N2Zz4=";
export const ICON_B =
  "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCAyNCAyNCI+PHJlY3Qgd2lkdGg9IjIwIiBoZWlnaHQ9IjIwIiB4PSIyIiB5PSIyIiBmaWxsPSIjMzc1YmQyIi8+PC9zdmc+";

export class DemoWallet extends TestWallet {
  constructor(privateKeyHex, chainId, knownChains) {
    super(privateKeyHex, chainId);
    this.knownChains = new Set(knownChains); // chains this wallet can switch to without adding them
    this.added = [];
  }

  handle(method, params) {
    if (method === "wallet_switchEthereumChain") {
      this.calls.push(method);
      const wanted = parseInt(params[0].chainId, 16);
      if (!this.knownChains.has(wanted)) throw Object.assign(new Error("Unrecognized chain ID"), { code: 4902 });
      this.chainId = wanted;
      return null;
    }
    if (method === "wallet_addEthereumChain") {
      this.calls.push(method);
      this.added.push(params[0]);
      this.knownChains.add(parseInt(params[0].chainId, 16));
      this.chainId = parseInt(params[0].chainId, 16);
      return null;
    }
    return super.handle(method, params);
  }

  async install(context) {
    await context.exposeBinding("__portcullisTestWallet", (_source, method, params) => {
      try {
        return { result: this.handle(method, params) };
      } catch (exc) {
        return { error: { code: exc.code ?? -32603, message: String(exc.message ?? exc) } };
      }
    });
    await context.addInitScript(
      ([iconA, iconB]) => {
        const provider = {
          isPortcullisTestWallet: true,
          async request({ method, params }) {
            const answer = await window.__portcullisTestWallet(method, params ?? []);
            if (answer.error) throw Object.assign(new Error(answer.error.message), { code: answer.error.code });
            return answer.result;
          },
        };
        window.ethereum = provider;
        const wallets = [
          { uuid: "6f1c5e2a-0000-4000-8000-00000000000a", name: "Test Wallet A", icon: iconA, rdns: "test.portcullis.a" },
          { uuid: "6f1c5e2a-0000-4000-8000-00000000000b", name: "Test Wallet B", icon: iconB, rdns: "test.portcullis.b" },
        ];
        const announce = () => {
          for (const info of wallets) {
            const detail = Object.freeze({ info: Object.freeze({ ...info }), provider });
            window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail }));
          }
        };
        window.addEventListener("eip6963:requestProvider", announce);
        announce();
      },
      [ICON_A, ICON_B],
    );
  }
}
