"""EIP-191 version 0x45 (personal_sign) hashing and secp256k1 signer recovery.

Signature policy:

* exactly 65 bytes ``r || s || v``, given as raw bytes or as ``0x`` + 130 hex digits;
* ``v`` is 27/28 (the Ethereum convention) or 0/1 (the raw recovery id some wallets send);
* ``0 < r < n`` and ``0 < s <= n/2``: high-s signatures are refused (EIP-2 low-s rule, also the
  rule of OpenZeppelin's ``ECDSA.recover``). Every secp256k1 signature has exactly one low-s twin,
  so refusing the other removes signature malleability at no cost to honest wallets, which all
  normalise to low s; all the shared EIP-4361 conformance vectors are low-s.

Anything else is ``MalformedSignature``; a well-formed signature from which no public key can be
recovered is ``InvalidSignature``.
"""

from __future__ import annotations

from coincurve import PublicKey

from app.siwe.eip55 import to_checksum
from app.siwe.errors import InvalidSignature, MalformedSignature
from app.siwe.keccak import keccak

_PREFIX = b"\x19Ethereum Signed Message:\n"
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_N_BYTES = SECP256K1_N.to_bytes(32, "big")
_HALF_N_BYTES = (SECP256K1_N // 2).to_bytes(32, "big")
_ZERO = bytes(32)
SIGNATURE_BYTES = 65


def personal_message_hash(message: bytes) -> bytes:
    """keccak256("\\x19Ethereum Signed Message:\\n" + decimal length + message)."""
    return keccak(b"".join((_PREFIX, str(len(message)).encode("ascii"), message)))


def _signature_bytes(signature: str | bytes) -> bytes:
    if isinstance(signature, str):
        if not signature.startswith("0x"):
            raise MalformedSignature("signature: a hex signature must start with 0x")
        try:
            raw = bytes.fromhex(signature[2:])
        except ValueError:
            raise MalformedSignature("signature: not hex (odd length or a non-hex character)") from None
        # fromhex skips whitespace, so a length check on the result (not on the string) is what
        # guarantees exactly 130 hex digits and nothing else.
        if len(raw) != SIGNATURE_BYTES or len(signature) != 2 + 2 * SIGNATURE_BYTES:
            raise MalformedSignature(
                f"signature: expected 0x + {2 * SIGNATURE_BYTES} hex digits ({SIGNATURE_BYTES} bytes)"
            )
        return raw
    if isinstance(signature, bytes | bytearray):
        if len(signature) != SIGNATURE_BYTES:
            raise MalformedSignature(
                f"signature: expected {SIGNATURE_BYTES} bytes (r, s, v), got {len(signature)}"
            )
        return bytes(signature)
    raise MalformedSignature("signature: must be a 0x-hex string or raw bytes")


def decode_signature(signature: str | bytes) -> bytes:
    """Validate a 65-byte ``r || s || v`` signature; return ``r || s || recovery_id`` (id 0 or 1).

    The returned form is what coincurve's recoverable-signature functions take.
    """
    raw = _signature_bytes(signature)
    v = raw[64]
    if v in (27, 28):
        recovery_id = v - 27
    elif v in (0, 1):
        recovery_id = v
    else:
        raise MalformedSignature(f"signature: v must be 27, 28, 0 or 1, got {v}")
    # Equal-length big-endian byte strings compare like the integers they encode.
    r, s = raw[:32], raw[32:64]
    if r == _ZERO or r >= _N_BYTES:
        raise MalformedSignature("signature: r is outside 1..n-1 of secp256k1")
    if s == _ZERO:
        raise MalformedSignature("signature: s is zero")
    if s > _HALF_N_BYTES:
        raise MalformedSignature("signature: s is in the upper half of the curve order (EIP-2 low-s)")
    return raw[:64] + bytes((recovery_id,))


def recover_address_bytes(message: bytes, signature: str | bytes) -> bytes:
    """The 20-byte address whose key made ``signature`` over the EIP-191 hash of ``message``."""
    recoverable = decode_signature(signature)
    digest = personal_message_hash(message)
    try:
        public_key = PublicKey.from_signature_and_message(recoverable, digest, hasher=None)
    except ValueError:
        raise InvalidSignature("signature: no secp256k1 public key recovers from it") from None
    # Ethereum address: the last 20 bytes of keccak256 over the 64-byte uncompressed point (no 0x04).
    return keccak(public_key.format(compressed=False)[1:])[-20:]


def recover_address(message: bytes, signature: str | bytes) -> str:
    """The EIP-55 checksummed address that signed ``message`` with EIP-191 personal_sign."""
    return to_checksum(recover_address_bytes(message, signature))
