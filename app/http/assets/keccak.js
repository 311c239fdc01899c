// Keccak-256 (the original Keccak padding 0x01, as Ethereum uses it; not SHA3-256) and EIP-55
// checksummed addresses, after the Keccak team's "Keccak specifications summary" (keccak.team).
// Lanes are 64-bit BigInts: slow for large inputs, plenty for a 40-character address.
const PortcullisKeccak = (() => {
  "use strict";
  const MASK = (1n << 64n) - 1n;
  const RATE = 136; // bytes: 1600 - 2 * 256 bits of capacity
  // Round constants RC[0..23] (iota step).
  const RC = [
    0x0000000000000001n, 0x0000000000008082n, 0x800000000000808an, 0x8000000080008000n,
    0x000000000000808bn, 0x0000000080000001n, 0x8000000080008081n, 0x8000000000008009n,
    0x000000000000008an, 0x0000000000000088n, 0x0000000080008009n, 0x000000008000000an,
    0x000000008000808bn, 0x800000000000008bn, 0x8000000000008089n, 0x8000000000008003n,
    0x8000000000008002n, 0x8000000000000080n, 0x000000000000800an, 0x800000008000000an,
    0x8000000080008081n, 0x8000000000008080n, 0x0000000080000001n, 0x8000000080008008n,
  ];
  // Rotation offsets r[x][y], stored at lane index x + 5y (rho step).
  const ROT = [
    0, 1, 62, 28, 27,
    36, 44, 6, 55, 20,
    3, 10, 43, 25, 39,
    41, 45, 15, 21, 8,
    18, 2, 61, 56, 14,
  ].map(BigInt);

  const rotl = (v, n) => (n === 0n ? v : ((v << n) | (v >> (64n - n))) & MASK);

  function permute(a) {
    const c = new Array(5);
    const b = new Array(25);
    for (let round = 0; round < 24; round++) {
      for (let x = 0; x < 5; x++) c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
      for (let x = 0; x < 5; x++) {
        const d = c[(x + 4) % 5] ^ rotl(c[(x + 1) % 5], 1n);
        for (let y = 0; y < 25; y += 5) a[x + y] ^= d;
      }
      // rho and pi: B[y, 2x + 3y] = rot(A[x, y], r[x, y])
      for (let x = 0; x < 5; x++) {
        for (let y = 0; y < 5; y++) b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(a[x + 5 * y], ROT[x + 5 * y]);
      }
      for (let y = 0; y < 25; y += 5) {
        for (let x = 0; x < 5; x++) a[x + y] = b[x + y] ^ (~b[((x + 1) % 5) + y] & MASK & b[((x + 2) % 5) + y]);
      }
      a[0] ^= RC[round];
    }
  }

  function keccak256(bytes) {
    const padded = new Uint8Array((Math.floor(bytes.length / RATE) + 1) * RATE);
    padded.set(bytes);
    padded[bytes.length] ^= 0x01;
    padded[padded.length - 1] ^= 0x80;
    const state = new Array(25).fill(0n);
    for (let off = 0; off < padded.length; off += RATE) {
      for (let i = 0; i < RATE / 8; i++) {
        let lane = 0n;
        for (let k = 7; k >= 0; k--) lane = (lane << 8n) | BigInt(padded[off + 8 * i + k]);
        state[i] ^= lane;
      }
      permute(state);
    }
    const out = new Uint8Array(32);
    for (let i = 0; i < 32; i++) out[i] = Number((state[i >> 3] >> BigInt(8 * (i & 7))) & 0xffn);
    return out;
  }

  const toHex = (bytes) => Array.from(bytes, (v) => v.toString(16).padStart(2, "0")).join("");

  // EIP-55: upper-case the i-th hex letter when the i-th nibble of keccak256(lower-case hex) is >= 8.
  function toChecksumAddress(address) {
    if (!/^0x[0-9a-fA-F]{40}$/.test(address)) throw new Error("not a 20-byte hex address");
    const lower = address.slice(2).toLowerCase();
    const hash = toHex(keccak256(new TextEncoder().encode(lower)));
    let out = "0x";
    for (let i = 0; i < 40; i++) out += parseInt(hash[i], 16) >= 8 ? lower[i].toUpperCase() : lower[i];
    return out;
  }

  return Object.freeze({ keccak256, toHex, toChecksumAddress });
})();
