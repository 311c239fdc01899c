"""ERC-1271 and ERC-6492 signatures of smart-contract wallets, checked by one deployless ``eth_call``.

The universal validator (contracts/src/UniversalSigValidator.sol) runs only as constructor code:
``data = creation bytecode ++ abi.encode(signer, hash, signature)``, no ``to``. It answers 0x01 or 0x00;
for an ERC-6492 wrapped signature it deploys the counterfactual wallet inside the call, so nothing is ever
deployed on chain. ERC-1271 counts only an exact ``0x1626ba7e`` answer. EOA recovery (app.siwe) stays first
and needs no RPC; this path runs only when it did not match.

Failure policy: a revert, a wrong answer, gas exhaustion or a call slower than the timeout means "not
signed" (401); an RPC that cannot be reached at all means the chain is unavailable (503, fail closed).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import aiohttp
from eth_abi.abi import encode
from eth_typing import HexStr
from web3 import AsyncWeb3
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    Web3Exception,
    Web3RPCError,
)

from app.chain import artifacts

VALIDATOR = "UniversalSigValidator"
ERC6492_SUFFIX = bytes.fromhex("64926492" * 8)
# A wrapped ERC-6492 signature carries factory calldata; 16 KiB is far above any real wallet's.
MAX_SIGNATURE_BYTES = 16 * 1024


class CallReverted(Exception):
    """The eth_call reverted (or ran out of gas)."""


class RpcUnreachable(Exception):
    """No RPC endpoint of the chain answered: the caller must fail closed."""


class DeploylessCaller(Protocol):
    async def call(self, data: bytes, gas: int) -> bytes:
        """``eth_call`` with no ``to`` at the latest block; CallReverted or RpcUnreachable on failure."""
        ...


def is_erc6492(signature: bytes) -> bool:
    return len(signature) >= 32 and signature.endswith(ERC6492_SUFFIX)


def validator_call_data(signer: str, digest: bytes, signature: bytes) -> bytes:
    return artifacts.bytecode(VALIDATOR) + encode(
        ["address", "bytes32", "bytes"], [signer, digest, signature]
    )


async def contract_signature_valid(
    caller: DeploylessCaller, signer: str, digest: bytes, signature: bytes, *, gas_cap: int, seconds: float
) -> bool:
    """Did ``signer`` (a deployed ERC-1271 wallet or a counterfactual ERC-6492 one) sign ``digest``?"""
    if len(signature) > MAX_SIGNATURE_BYTES:
        return False
    try:
        async with asyncio.timeout(seconds):
            answer = await caller.call(validator_call_data(signer, digest, signature), gas_cap)
    except (CallReverted, TimeoutError):
        return False
    return answer == b"\x01"


class Web3Caller:
    """DeploylessCaller over a web3.py 8 AsyncWeb3 (HTTP RPC, or the in-process development chain)."""

    def __init__(self, w3: AsyncWeb3) -> None:  # type: ignore[type-arg]
        self.w3 = w3

    async def call(self, data: bytes, gas: int) -> bytes:
        try:
            answer = await self.w3.eth.call({"data": HexStr("0x" + data.hex()), "gas": gas}, "latest")
        except (ContractLogicError, ContractCustomError, ContractPanicError):
            raise CallReverted("the validator call reverted") from None
        except Web3RPCError as exc:
            # Execution errors (out of gas, invalid opcode) come back as RPC errors: the call failed.
            raise CallReverted(str(exc)[:200]) from None
        except (OSError, aiohttp.ClientError, Web3Exception) as exc:
            raise RpcUnreachable(f"{exc.__class__.__name__}: {str(exc)[:200]}") from None
        return bytes(answer)
