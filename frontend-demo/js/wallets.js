// Wallets through EIP-1193 only: discovered with EIP-6963 (each injected wallet announces itself with its
// name, icon and rdns), window.ethereum as the fallback for wallets that do not announce.

const FALLBACK_ICON =
  "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCAyNCAyNCI+PHJlY3Qgd2lkdGg9IjI0IiBoZWlnaHQ9IjI0IiByeD0iNCIgZmlsbD0iIzU3NjA2YSIvPjwvc3ZnPg==";

// EIP-6963: listen, then ask; wallets answer synchronously or soon after. Resolves with every wallet that
// announced within `waitMs`, or window.ethereum alone when none did.
export function discoverWallets(waitMs = 300) {
  const found = new Map();
  const onAnnounce = (event) => {
    const { info, provider } = event.detail ?? {};
    if (!info?.uuid || !provider?.request || found.has(info.uuid)) return;
    found.set(info.uuid, { info, provider });
  };
  window.addEventListener("eip6963:announceProvider", onAnnounce);
  window.dispatchEvent(new Event("eip6963:requestProvider"));
  return new Promise((resolve) => {
    setTimeout(() => {
      window.removeEventListener("eip6963:announceProvider", onAnnounce);
      const wallets = [...found.values()];
      if (wallets.length === 0 && window.ethereum?.request) {
        wallets.push({
          info: { uuid: "window.ethereum", name: "Browser wallet", icon: FALLBACK_ICON, rdns: "window.ethereum" },
          provider: window.ethereum,
        });
      }
      resolve(wallets);
    }, waitMs);
  });
}

// An EIP-1193 error in words. 4001: the user said no; 4100: not authorised; 4902: chain unknown to the wallet.
export function walletErrorText(exc) {
  switch (exc?.code) {
    case 4001:
      return "You rejected the request in your wallet. Nothing was signed; try again when you are ready.";
    case 4100:
      return "The wallet has not authorised this site for that account. Connect it again.";
    case -32002:
      return "Your wallet already has a request waiting: open it and answer that first.";
    default:
      return `The wallet answered with an error: ${exc?.message ?? exc}`;
  }
}

export async function connect(wallet) {
  const accounts = await wallet.provider.request({ method: "eth_requestAccounts" });
  if (!Array.isArray(accounts) || accounts.length === 0) throw new Error("the wallet gave no account");
  // EIP-4361 wants the EIP-55 checksummed address; wallets often answer in lower case. PortcullisKeccak
  // is the global of keccak.js, a classic script loaded before this module (index.html).
  const address = PortcullisKeccak.toChecksumAddress(accounts[0]);
  return { address, chainId: await chainId(wallet) };
}

export async function chainId(wallet) {
  return parseInt(await wallet.provider.request({ method: "eth_chainId" }), 16);
}

// EIP-3326 wallet_switchEthereumChain; a wallet that does not know the chain (4902) is offered EIP-3085
// wallet_addEthereumChain with the development chain's RPC URL, when there is one.
export async function switchChain(wallet, config) {
  const hex = "0x" + config.chain_id.toString(16);
  try {
    await wallet.provider.request({ method: "wallet_switchEthereumChain", params: [{ chainId: hex }] });
  } catch (exc) {
    if (exc?.code !== 4902 || !config.chain_rpc_url) throw exc;
    await wallet.provider.request({
      method: "wallet_addEthereumChain",
      params: [
        {
          chainId: hex,
          chainName: "Portcullis development chain",
          rpcUrls: [config.chain_rpc_url],
          nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
        },
      ],
    });
  }
  return chainId(wallet);
}

export function personalSign(wallet, address, message) {
  const hex = "0x" + Array.from(new TextEncoder().encode(message), (b) => b.toString(16).padStart(2, "0")).join("");
  return wallet.provider.request({ method: "personal_sign", params: [hex, address] });
}
