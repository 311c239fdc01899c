"""ERC-1271 and ERC-6492 signatures of smart-contract wallets, checked by one deployless ``eth_call``.

The universal validator (contracts/src/UniversalSigValidator.sol) runs only as constructor code:
``data = creation bytecode ++ abi.encode(signer, hash, signature)``, no ``to``. It answers 0x01 or 0x00;
for an ERC-6492 wrapped signature it deploys the counterfactual wallet inside the call, so nothing is ever
deployed on chain. ERC-1271 counts only an exact ``0x1626ba7e`` answer. EOA recovery (app.siwe) stays first
and needs no RPC; this path runs only when it did not match.

Failure policy: a revert, a wrong answer or gas exhaustion means "not signed" (401). A chain that cannot be
reached, or does not answer within the time limit (``signature_timeout_seconds``), raises ChainUnavailable
(503, fail closed): "could not check" is not "invalid".
"""

from __future__ import annotations

import asyncio

from eth_abi.abi import encode

from app.chain import artifacts
from app.chain.rpc import RpcClient
from app.chain.types import CallReverted, ChainUnavailable

VALIDATOR = "UniversalSigValidator"
ERC6492_SUFFIX = bytes.fromhex("64926492" * 8)
# A wrapped ERC-6492 signature carries factory calldata; 16 KiB is far above any real wallet's.
MAX_SIGNATURE_BYTES = 16 * 1024


def is_erc6492(signature: bytes) -> bool:
    return len(signature) >= 32 and signature.endswith(ERC6492_SUFFIX)


def validator_call_data(signer: str, digest: bytes, signature: bytes) -> bytes:
    return artifacts.bytecode(VALIDATOR) + encode(
        ["address", "bytes32", "bytes"], [signer, digest, signature]
    )


async def contract_signature_valid(
    rpc: RpcClient, signer: str, digest: bytes, signature: bytes, *, gas_cap: int, seconds: float
) -> bool:
    """Did ``signer`` (a deployed ERC-1271 wallet or a counterfactual ERC-6492 one) sign ``digest``?

    Raises ChainUnavailable when no RPC endpoint of the chain answers within ``seconds``.
    """
    if len(signature) > MAX_SIGNATURE_BYTES:
        return False
    try:
        async with asyncio.timeout(seconds):
            answer = await rpc.call(None, validator_call_data(signer, digest, signature), "latest", gas_cap)
    except CallReverted:
        return False
    except TimeoutError:
        # The gas cap bounds the call's work, so a node that has not answered by now is not answering.
        raise ChainUnavailable(f"no answer to the signature check within {seconds:g}s") from None
    return answer == b"\x01"
