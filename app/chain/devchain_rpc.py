"""Ethereum JSON-RPC (a subset of the execution API) served by an in-process py-evm chain.

JSON-RPC 2.0 (https://www.jsonrpc.org/specification), batches included, with the error conventions of geth
and anvil: -32600/-32601/-32602/-32603 for protocol errors, -32000 for a rejected transaction or an unknown
block, and code 3 with the revert data (``0x``-hex) as ``data`` when execution reverts, so callers decode
custom errors the way they do against a real node.

Mining is anvil's automine: every accepted transaction is mined at once in its own block. Block time follows
the clock: the pending header is re-stamped with ``max(now, parent + 1)`` just before a transaction is
applied, so ``block.timestamp`` is the wall-clock time of the write (a burst of writes in one second runs a
few seconds ahead, by one second per block). ``eth_call`` and ``eth_estimateGas`` at ``latest``/``pending``
run on the latest state in the context of the next block, stamped with the time now (as anvil does), so an
expired record reads as expired without waiting for a block; at a block number they run in that block's
own context (as geth does).

py-evm is not thread-safe: every request runs under one lock. The caller decides which thread that is.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import rlp
from eth.abc import (
    BlockAPI,
    BlockHeaderAPI,
    ComputationAPI,
    LegacyTransactionFieldsAPI,
    ReceiptAPI,
    SignedTransactionAPI,
    StateAPI,
    UnsignedTransactionAPI,
)
from eth.chains.base import MiningChain
from eth.exceptions import BlockNotFound, HeaderNotFound, OutOfGas, Revert, TransactionNotFound
from eth.vm.spoof import SpoofTransaction
from eth_abi.abi import decode
from eth_keys.datatypes import PrivateKey
from eth_utils.crypto import keccak
from eth_utils.exceptions import ValidationError

from app.clock import Clock

log = logging.getLogger("portcullis.devchain")

T = TypeVar("T")
Json = Any  # a value as json.loads returns it
RpcResponse = dict[str, Any]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000  # geth: transaction rejected, header not found, ...
EXECUTION_REVERTED = 3  # geth/anvil: execution reverted; data = revert bytes

ZERO_ADDRESS = b"\x00" * 20
EMPTY_TRIE_ROOT = keccak(rlp.encode(b""))
DEFAULT_PRIORITY_FEE = 10**9  # 1 gwei, what eth_maxPriorityFeePerGas suggests
ESTIMATE_TOLERANCE = 1_000  # eth_estimateGas answers within this much gas of the minimum
ERROR_STRING_SELECTOR = keccak(text="Error(string)")[:4]
BLOCK_TAGS = frozenset({"latest", "pending", "earliest", "safe", "finalized"})
NEXT_BLOCK_TAGS = frozenset({"latest", "pending"})  # calls at these run in the next block, at the time now

_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,64}")
_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")

BlockId = int | str | bytes  # a number, a tag, or a 32-byte block hash
LATEST: BlockId = "latest"


class RpcError(Exception):
    """A JSON-RPC error object: ``code``, ``message`` and optional ``data``."""

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def error_response(request_id: Json, error: RpcError) -> RpcResponse:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_json()}


@dataclass(frozen=True)
class TxRequest:
    """A transaction or call as eth_call, eth_estimateGas and eth_sendTransaction take it."""

    sender: bytes | None = None
    to: bytes | None = None  # None creates a contract
    data: bytes = b""
    value: int = 0
    gas: int | None = None
    nonce: int | None = None
    gas_price: int | None = None  # set: a legacy transaction
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None


@dataclass(frozen=True)
class MinedBlock:
    """A block as the development chain journal keeps it: enough to mine it again, and its hash to check."""

    number: int
    timestamp: int
    transactions: tuple[bytes, ...]  # signed, EIP-2718 encoded (what eth_sendRawTransaction takes)
    block_hash: bytes


class ReplayError(Exception):
    """A journalled block could not be mined again as it was (the message says which and why)."""


@dataclass(frozen=True)
class Applied:
    """A transaction mined by :meth:`EvmRpc.transact`: its hash, outcome and revert data."""

    tx_hash: bytes
    success: bool
    output: bytes
    gas_used: int


# -- encoding ------------------------------------------------------------------------------------------


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def contract_address(sender: bytes, nonce: int) -> bytes:
    """The address CREATE gives: the last 20 bytes of keccak(rlp([sender, nonce]))."""
    return keccak(rlp.encode([sender, nonce]))[12:]


# -- parameter parsing (each parser raises ValueError with a reason) ------------------------------------


def parse_quantity(value: Json) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _QUANTITY.fullmatch(value):
        return int(value, 16)
    raise ValueError("expected a hex quantity such as 0x1a")


def parse_data(value: Json) -> bytes:
    if isinstance(value, str) and _DATA.fullmatch(value):
        return bytes.fromhex(value[2:])
    raise ValueError("expected 0x-prefixed hex bytes")


def parse_address(value: Json) -> bytes:
    raw = parse_data(value)
    if len(raw) != 20:
        raise ValueError("expected a 20-byte address")
    return raw


def parse_hash(value: Json) -> bytes:
    raw = parse_data(value)
    if len(raw) != 32:
        raise ValueError("expected a 32-byte hash")
    return raw


def parse_bool(value: Json) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("expected true or false")


def parse_block_id(value: Json) -> BlockId:
    """A block tag, a number, or an EIP-1898 object ``{"blockNumber": ...}`` / ``{"blockHash": ...}``."""
    if isinstance(value, str) and value in BLOCK_TAGS:
        return value
    if isinstance(value, dict):
        if "blockHash" in value:
            return parse_hash(value["blockHash"])
        if "blockNumber" in value:
            return parse_block_id(value["blockNumber"])
        raise ValueError("expected blockHash or blockNumber")
    try:
        return parse_quantity(value)
    except ValueError:
        raise ValueError(f"expected a block number or one of {', '.join(sorted(BLOCK_TAGS))}") from None


def parse_tx_request(value: Json) -> TxRequest:
    if not isinstance(value, dict):
        raise ValueError("expected a transaction object")

    def field(name: str, parse: Callable[[Json], T]) -> T | None:
        raw = value.get(name)
        if raw is None:
            return None
        try:
            return parse(raw)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None

    data, input_ = field("data", parse_data), field("input", parse_data)
    if data is not None and input_ is not None and data != input_:
        raise ValueError("both data and input are set and differ")
    return TxRequest(
        sender=field("from", parse_address),
        to=field("to", parse_address),
        data=input_ if input_ is not None else (data or b""),
        value=field("value", parse_quantity) or 0,
        gas=field("gas", parse_quantity),
        nonce=field("nonce", parse_quantity),
        gas_price=field("gasPrice", parse_quantity),
        max_fee_per_gas=field("maxFeePerGas", parse_quantity),
        max_priority_fee_per_gas=field("maxPriorityFeePerGas", parse_quantity),
    )


class _Params:
    """Positional JSON-RPC params, parsed one by one into -32602 errors that name the argument."""

    def __init__(self, values: list[Json], max_count: int) -> None:
        if len(values) > max_count:
            raise RpcError(INVALID_PARAMS, f"too many arguments, want at most {max_count}")
        self._values = values

    def required(self, index: int, parse: Callable[[Json], T]) -> T:
        if index >= len(self._values) or self._values[index] is None:
            raise RpcError(INVALID_PARAMS, f"missing value for required argument {index}")
        return self._parse(index, parse)

    def optional(self, index: int, parse: Callable[[Json], T], default: T) -> T:
        if index >= len(self._values) or self._values[index] is None:
            return default
        return self._parse(index, parse)

    def _parse(self, index: int, parse: Callable[[Json], T]) -> T:
        try:
            return parse(self._values[index])
        except ValueError as exc:
            raise RpcError(INVALID_PARAMS, f"invalid argument {index}: {exc}") from None


@dataclass(frozen=True)
class _LogFilter:
    from_block: BlockId
    to_block: BlockId
    block_hash: bytes | None
    addresses: frozenset[bytes]
    topics: tuple[frozenset[bytes] | None, ...]

    def matches(self, address: bytes, topics: Sequence[int]) -> bool:
        if self.addresses and address not in self.addresses:
            return False
        return all(
            wanted is None or (position < len(topics) and topics[position].to_bytes(32, "big") in wanted)
            for position, wanted in enumerate(self.topics)
        )


def _one_or_many(value: Json, parse: Callable[[Json], bytes]) -> frozenset[bytes]:
    items = value if isinstance(value, list) else [value]
    return frozenset(parse(item) for item in items)


def parse_log_filter(value: Json) -> _LogFilter:
    if not isinstance(value, dict):
        raise ValueError("expected a filter object")
    block_hash = parse_hash(value["blockHash"]) if value.get("blockHash") is not None else None
    if block_hash is not None and (value.get("fromBlock") is not None or value.get("toBlock") is not None):
        raise ValueError("blockHash excludes fromBlock and toBlock")
    address = value.get("address")
    topics = value.get("topics") or []
    if not isinstance(topics, list) or len(topics) > 4:
        raise ValueError("topics: expected a list of at most 4 entries")
    return _LogFilter(
        from_block=parse_block_id(value.get("fromBlock") or "latest"),
        to_block=parse_block_id(value.get("toBlock") or "latest"),
        block_hash=block_hash,
        addresses=frozenset() if address is None else _one_or_many(address, parse_address),
        topics=tuple(None if topic is None else _one_or_many(topic, parse_hash) for topic in topics),
    )


# -- the node ------------------------------------------------------------------------------------------


class EvmRpc:
    """A py-evm ``MiningChain`` behind JSON-RPC: reads, calls, automined writes, under one lock.

    ``signers`` are the unlocked accounts eth_sendTransaction may sign for (and eth_accounts lists).
    """

    def __init__(
        self,
        chain: MiningChain,
        *,
        chain_id: int,
        clock: Clock,
        signers: Mapping[bytes, PrivateKey],
        client_version: str,
        on_mined: Callable[[MinedBlock], None] | None = None,
    ) -> None:
        """``on_mined`` is called (lock held) with every block mined by a request or :meth:`transact`."""
        self._chain = chain
        self._on_mined = on_mined
        self._chain_id = chain_id
        self._clock = clock
        self._signers = dict(signers)
        self._client_version = client_version
        self._lock = threading.Lock()
        self._methods: dict[str, Callable[[list[Json]], Json]] = {
            "web3_clientVersion": self._client_version_method,
            "net_version": self._net_version,
            "net_listening": self._net_listening,
            "eth_chainId": self._eth_chain_id,
            "eth_syncing": self._eth_syncing,
            "eth_accounts": self._eth_accounts,
            "eth_blockNumber": self._eth_block_number,
            "eth_getBlockByNumber": self._eth_get_block_by_number,
            "eth_getBlockByHash": self._eth_get_block_by_hash,
            "eth_gasPrice": self._eth_gas_price,
            "eth_maxPriorityFeePerGas": self._eth_max_priority_fee,
            "eth_feeHistory": self._eth_fee_history,
            "eth_getTransactionCount": self._eth_get_transaction_count,
            "eth_getBalance": self._eth_get_balance,
            "eth_getCode": self._eth_get_code,
            "eth_getStorageAt": self._eth_get_storage_at,
            "eth_call": self._eth_call,
            "eth_estimateGas": self._eth_estimate_gas,
            "eth_sendRawTransaction": self._eth_send_raw_transaction,
            "eth_sendTransaction": self._eth_send_transaction,
            "eth_getTransactionByHash": self._eth_get_transaction_by_hash,
            "eth_getTransactionReceipt": self._eth_get_transaction_receipt,
            "eth_getLogs": self._eth_get_logs,
        }

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(self._methods)

    # -- JSON-RPC 2.0 envelope --

    def handle(self, payload: Json) -> RpcResponse | list[RpcResponse] | None:
        """Answer one request or a batch; None when there is nothing to send back (only notifications)."""
        if isinstance(payload, list):
            if not payload:
                return error_response(None, RpcError(INVALID_REQUEST, "empty batch"))
            answers = [self._handle_one(item) for item in payload]
            responses = [answer for answer in answers if answer is not None]
            return responses or None
        return self._handle_one(payload)

    def _handle_one(self, request: Json) -> RpcResponse | None:
        if not isinstance(request, dict):
            return error_response(None, RpcError(INVALID_REQUEST, "a request must be a JSON object"))
        request_id = request.get("id")
        if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, int | str)):
            return error_response(None, RpcError(INVALID_REQUEST, "id must be a string, an integer or null"))
        method, params = request.get("method"), request.get("params", [])
        if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
            invalid = RpcError(INVALID_REQUEST, 'expected "jsonrpc": "2.0" and a method')
            return error_response(request_id, invalid)
        try:
            if not isinstance(params, list):
                raise RpcError(INVALID_PARAMS, "params must be an array")
            handler = self._methods.get(method)
            if handler is None:
                raise RpcError(METHOD_NOT_FOUND, f"the method {method} does not exist/is not available")
            with self._lock:
                result = handler(params)
            response: RpcResponse = {"jsonrpc": "2.0", "id": request_id, "result": result}
        except RpcError as exc:
            response = error_response(request_id, exc)
        except Exception:
            log.exception("dev chain: %s failed", method)
            response = error_response(request_id, RpcError(INTERNAL_ERROR, "internal error"))
        return None if "id" not in request else response

    # -- Python API (takes the lock) --

    def transact(self, requests: Sequence[TxRequest]) -> list[Applied]:
        """Sign ``requests`` with the unlocked keys and mine them together in one block."""
        with self._lock:
            return self._mine(requests)

    def replay(self, blocks: Sequence[MinedBlock]) -> None:
        """Mine journalled blocks again, each at its own timestamp; ReplayError unless each hash matches."""
        with self._lock:
            for block in blocks:
                head = self._head()
                if block.number != head.block_number + 1:
                    raise ReplayError(f"block {block.number} follows block {head.block_number}")
                builder = self._chain.get_vm().get_transaction_builder()
                try:
                    transactions = [builder.decode(raw) for raw in block.transactions]
                    _, mined = self._mine_at(block.timestamp, transactions)
                except Exception as exc:  # rlp, py-evm and eth-keys each raise their own kinds
                    raise ReplayError(f"block {block.number} does not apply: {exc}") from None
                if mined.block_hash != block.block_hash:
                    raise ReplayError(f"block {block.number} comes out with another hash")

    # -- chain access (lock held) --

    def _now(self) -> int:
        return int(self._clock.now().timestamp())

    def _head(self) -> BlockHeaderAPI:
        return self._chain.get_canonical_head()

    def _block_number(self, block: BlockId) -> int:
        head = self._head().block_number
        if isinstance(block, bytes):
            return self._header_by_hash(block).block_number
        if isinstance(block, str):
            return 0 if block == "earliest" else head
        if block > head:
            raise RpcError(SERVER_ERROR, "header not found")
        return block

    def _header_by_hash(self, block_hash: bytes) -> BlockHeaderAPI:
        try:
            header = self._chain.get_block_header_by_hash(block_hash)  # type: ignore[arg-type]
        except (HeaderNotFound, BlockNotFound):
            raise RpcError(SERVER_ERROR, "header not found") from None
        if self._chain.get_canonical_block_hash(header.block_number) != header.hash:
            raise RpcError(SERVER_ERROR, "header not found")
        return header

    def _header(self, block: BlockId) -> BlockHeaderAPI:
        if isinstance(block, bytes):
            return self._header_by_hash(block)
        return self._chain.get_canonical_block_header_by_number(self._block_number(block))  # type: ignore[arg-type]

    def _block(self, number: int) -> BlockAPI:
        return self._chain.get_canonical_block_by_number(number)  # type: ignore[arg-type]

    def _state(self, block: BlockId) -> StateAPI:
        return self._chain.get_vm(self._header(block)).state

    def _next_header(self) -> BlockHeaderAPI:
        """The header the next block would get if it were mined now."""
        head = self._head()
        return self._chain.create_header_from_parent(head, timestamp=max(self._now(), head.timestamp + 1))

    # -- execution --

    def _execute(self, request: TxRequest, block: BlockId) -> ComputationAPI:
        """Run a call without fees or nonce checks on a throwaway state; raise RpcError if it fails."""
        state, unsigned, sender = self._call_setup(request, block)
        computation = self._run(state, SpoofTransaction(unsigned, from_=sender))
        if computation.is_error:
            raise _execution_error(computation)
        return computation

    def _call_setup(
        self, request: TxRequest, block: BlockId
    ) -> tuple[StateAPI, UnsignedTransactionAPI, bytes]:
        header = self._next_header() if block in NEXT_BLOCK_TAGS else self._header(block)
        # No fees (geth's eth_call charges none either) and the whole block gas limit available.
        vm = self._chain.get_vm(header.copy(base_fee_per_gas=0, gas_used=0))
        state = vm.state
        sender = request.sender or ZERO_ADDRESS
        unsigned = vm.create_unsigned_transaction(
            nonce=state.get_nonce(sender),  # type: ignore[arg-type]
            gas_price=0,
            gas=request.gas or header.gas_limit,
            to=request.to or b"",  # type: ignore[arg-type]
            value=request.value,
            data=request.data,
        )
        return state, unsigned, sender

    @staticmethod
    def _run(state: StateAPI, transaction: SpoofTransaction) -> ComputationAPI:
        snapshot = state.snapshot()
        try:
            return state.apply_transaction(transaction)  # type: ignore[arg-type]
        except ValidationError as exc:
            raise RpcError(SERVER_ERROR, str(exc)) from None
        finally:
            state.revert(snapshot)

    def _estimate(self, request: TxRequest, block: BlockId) -> int:
        """The least gas (within ESTIMATE_TOLERANCE) with which the transaction does not fail."""
        state, unsigned, sender = self._call_setup(request, block)
        computation = self._run(state, SpoofTransaction(unsigned, from_=sender))
        if computation.is_error:
            raise _execution_error(computation)

        def fails(gas: int) -> bool:
            return self._run(state, SpoofTransaction(unsigned, from_=sender, gas=gas)).is_error

        # Any limit below what the run consumed (before refunds) fails; that much is usually also enough.
        used = unsigned.intrinsic_gas + computation.get_gas_used()
        if not fails(used):
            return used
        failing, passing = used, unsigned.gas
        while passing - failing > ESTIMATE_TOLERANCE:
            probe = (failing + passing) // 2
            if fails(probe):
                failing = probe
            else:
                passing = probe
        return passing

    def _signer_for(self, request: TxRequest) -> SignedTransactionAPI:
        if request.sender is None:
            raise RpcError(INVALID_PARAMS, "from is required")
        key = self._signers.get(request.sender)
        if key is None:
            raise RpcError(SERVER_ERROR, "unknown account: not one of the unlocked development accounts")
        vm = self._chain.get_vm()  # the pending block: nonces count transactions applied in it already
        nonce = request.nonce if request.nonce is not None else vm.state.get_nonce(request.sender)  # type: ignore[arg-type]
        gas = request.gas if request.gas is not None else self._estimate(request, "pending")
        to: Any = request.to or b""
        if request.gas_price is not None:
            legacy = vm.create_unsigned_transaction(
                nonce=nonce,
                gas_price=request.gas_price,
                gas=gas,
                to=to,
                value=request.value,
                data=request.data,
            )
            return legacy.as_signed_transaction(key, chain_id=self._chain_id)
        tip = request.max_priority_fee_per_gas
        tip = DEFAULT_PRIORITY_FEE if tip is None else tip
        base_fee = vm.get_header().base_fee_per_gas or 0
        max_fee = request.max_fee_per_gas if request.max_fee_per_gas is not None else 2 * base_fee + tip
        builder: Any = vm.get_transaction_builder()  # the London+ builder; the ABC does not declare it
        dynamic = builder.new_unsigned_dynamic_fee_transaction(
            chain_id=self._chain_id,
            nonce=nonce,
            max_priority_fee_per_gas=tip,
            max_fee_per_gas=max_fee,
            gas=gas,
            to=to,
            value=request.value,
            data=request.data,
            access_list=(),
        )
        signed: SignedTransactionAPI = dynamic.as_signed_transaction(key)
        return signed

    def _mine(self, transactions: Sequence[SignedTransactionAPI | TxRequest]) -> list[Applied]:
        """Apply the transactions to a block stamped with the time now and mine it; all or nothing.

        A :class:`TxRequest` is signed when its turn comes, so its nonce counts the ones before it.
        """
        applied, mined = self._mine_at(max(self._now(), self._head().timestamp + 1), transactions)
        if self._on_mined is not None:
            self._on_mined(mined)
        return applied

    def _mine_at(
        self, timestamp: int, transactions: Sequence[SignedTransactionAPI | TxRequest]
    ) -> tuple[list[Applied], MinedBlock]:
        head = self._head()
        self._chain.set_header_timestamp(timestamp)
        applied: list[Applied] = []
        signed: list[SignedTransactionAPI] = []
        try:
            for item in transactions:
                transaction = self._signer_for(item) if isinstance(item, TxRequest) else item
                if transaction.chain_id is not None and transaction.chain_id != self._chain_id:
                    raise RpcError(
                        SERVER_ERROR,
                        f"invalid chain id for signer: have {transaction.chain_id} want {self._chain_id}",
                    )
                _, _, computation = self._chain.apply_transaction(transaction)
                signed.append(transaction)
                applied.append(
                    Applied(
                        tx_hash=transaction.hash,
                        success=computation.is_success,
                        output=computation.output,
                        gas_used=transaction.gas_used_by(computation),
                    )
                )
        except ValidationError as exc:
            self._chain.header = self._chain.create_header_from_parent(head)
            raise RpcError(SERVER_ERROR, str(exc)) from None
        except RpcError:
            self._chain.header = self._chain.create_header_from_parent(head)
            raise
        # prevrandao: deterministic per parent, so a replay of the same writes gives the same chain.
        block = self._chain.mine_block(mix_hash=keccak(head.hash))
        mined = MinedBlock(
            number=block.number,
            timestamp=block.header.timestamp,
            transactions=tuple(transaction.encode() for transaction in signed),
            block_hash=block.hash,
        )
        return applied, mined

    # -- serialization --

    def _block_json(self, block: BlockAPI, full: bool) -> dict[str, Any]:
        header = block.header
        transactions: list[Any] = [
            self._tx_json(tx, header, index) if full else _hex(tx.hash)
            for index, tx in enumerate(block.transactions)
        ]
        return {
            "number": hex(header.block_number),
            "hash": _hex(header.hash),
            "parentHash": _hex(header.parent_hash),
            "nonce": _hex(header.nonce),
            "mixHash": _hex(header.mix_hash),
            "sha3Uncles": _hex(header.uncles_hash),
            "logsBloom": _word_bloom(header.bloom),
            "transactionsRoot": _hex(header.transaction_root),
            "stateRoot": _hex(header.state_root),
            "receiptsRoot": _hex(header.receipt_root),
            "miner": _hex(header.coinbase),
            "difficulty": hex(header.difficulty),
            "totalDifficulty": hex(header.difficulty),
            "extraData": _hex(header.extra_data),
            "size": hex(len(rlp.encode(block))),
            "gasLimit": hex(header.gas_limit),
            "gasUsed": hex(header.gas_used),
            "timestamp": hex(header.timestamp),
            "baseFeePerGas": hex(header.base_fee_per_gas or 0),
            "withdrawals": [],
            "withdrawalsRoot": _hex(header.withdrawals_root or EMPTY_TRIE_ROOT),
            "blobGasUsed": hex(header.blob_gas_used),
            "excessBlobGas": hex(header.excess_blob_gas),
            "parentBeaconBlockRoot": _hex(header.parent_beacon_block_root or b"\x00" * 32),
            "transactions": transactions,
            "uncles": [],
        }

    def _tx_json(self, tx: SignedTransactionAPI, header: BlockHeaderAPI, index: int) -> dict[str, Any]:
        tx_type = tx.type_id or 0
        out: dict[str, Any] = {
            "type": hex(tx_type),
            "hash": _hex(tx.hash),
            "nonce": hex(tx.nonce),
            "blockHash": _hex(header.hash),
            "blockNumber": hex(header.block_number),
            "transactionIndex": hex(index),
            "from": _hex(tx.sender),
            "to": _hex(tx.to) if tx.to else None,
            "value": hex(tx.value),
            "gas": hex(tx.gas),
            "input": _hex(tx.data),
        }
        if tx_type >= 1:
            out["chainId"] = hex(tx.chain_id or self._chain_id)
            out["accessList"] = [
                {"address": _hex(address), "storageKeys": [_word(key) for key in keys]}
                for address, keys in tx.access_list
            ]
        if tx_type >= 2:
            out["maxFeePerGas"] = hex(tx.max_fee_per_gas)
            out["maxPriorityFeePerGas"] = hex(tx.max_priority_fee_per_gas)
        out["gasPrice"] = hex(_effective_gas_price(tx, header))
        out["v"] = hex(tx.y_parity if tx_type >= 1 else cast(LegacyTransactionFieldsAPI, tx).v)
        out["r"] = hex(tx.r)
        out["s"] = hex(tx.s)
        if tx_type >= 1:
            out["yParity"] = hex(tx.y_parity)
        return out

    def _block_logs(self, block: BlockAPI) -> Iterator[tuple[int, SignedTransactionAPI, ReceiptAPI, int]]:
        """(transaction index, transaction, receipt, index of its first log in the block)."""
        first_log = 0
        receipts = block.get_receipts(self._chain.chaindb)
        for index, (tx, receipt) in enumerate(zip(block.transactions, receipts, strict=True)):
            yield index, tx, receipt, first_log
            first_log += len(receipt.logs)

    def _logs_json(
        self,
        block: BlockAPI,
        index: int,
        tx: SignedTransactionAPI,
        receipt: ReceiptAPI,
        first_log: int,
        query: _LogFilter | None = None,
    ) -> list[dict[str, Any]]:
        header = block.header
        return [
            {
                "address": _hex(entry.address),
                "topics": [_word(topic) for topic in entry.topics],
                "data": _hex(entry.data),
                "blockNumber": hex(header.block_number),
                "blockHash": _hex(header.hash),
                "blockTimestamp": hex(header.timestamp),
                "transactionHash": _hex(tx.hash),
                "transactionIndex": hex(index),
                "logIndex": hex(first_log + offset),
                "removed": False,
            }
            for offset, entry in enumerate(receipt.logs)
            if query is None or query.matches(entry.address, entry.topics)
        ]

    def _receipt_json(self, block: BlockAPI, tx_index: int) -> dict[str, Any]:
        header = block.header
        for index, tx, receipt, first_log in self._block_logs(block):
            if index == tx_index:
                previous = block.get_receipts(self._chain.chaindb)[index - 1].gas_used if index else 0
                return {
                    "type": hex(tx.type_id or 0),
                    "transactionHash": _hex(tx.hash),
                    "transactionIndex": hex(index),
                    "blockHash": _hex(header.hash),
                    "blockNumber": hex(header.block_number),
                    "from": _hex(tx.sender),
                    "to": _hex(tx.to) if tx.to else None,
                    "contractAddress": None if tx.to else _hex(contract_address(tx.sender, tx.nonce)),
                    "cumulativeGasUsed": hex(receipt.gas_used),
                    "gasUsed": hex(receipt.gas_used - previous),
                    "effectiveGasPrice": hex(_effective_gas_price(tx, header)),
                    "logs": self._logs_json(block, index, tx, receipt, first_log),
                    "logsBloom": _word_bloom(receipt.bloom),
                    "status": "0x1" if receipt.state_root == b"\x01" else "0x0",
                }
        raise RpcError(INTERNAL_ERROR, "receipt index out of range")

    def _locate(self, tx_hash: bytes) -> tuple[BlockAPI, int] | None:
        try:
            number, index = self._chain.get_canonical_transaction_index(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        return self._block(number), index

    # -- methods --

    def _client_version_method(self, params: list[Json]) -> str:
        _Params(params, 0)
        return self._client_version

    def _net_version(self, params: list[Json]) -> str:
        _Params(params, 0)
        return str(self._chain_id)

    def _net_listening(self, params: list[Json]) -> bool:
        _Params(params, 0)
        return True

    def _eth_chain_id(self, params: list[Json]) -> str:
        _Params(params, 0)
        return hex(self._chain_id)

    def _eth_syncing(self, params: list[Json]) -> bool:
        _Params(params, 0)
        return False

    def _eth_accounts(self, params: list[Json]) -> list[str]:
        _Params(params, 0)
        return [_hex(address) for address in self._signers]

    def _eth_block_number(self, params: list[Json]) -> str:
        _Params(params, 0)
        return hex(self._head().block_number)

    def _eth_get_block_by_number(self, params: list[Json]) -> dict[str, Any] | None:
        args = _Params(params, 2)
        block, full = args.required(0, parse_block_id), args.optional(1, parse_bool, False)
        try:
            number = self._block_number(block)
        except RpcError:
            return None  # geth: null for a block it does not have
        return self._block_json(self._block(number), full)

    def _eth_get_block_by_hash(self, params: list[Json]) -> dict[str, Any] | None:
        args = _Params(params, 2)
        block_hash, full = args.required(0, parse_hash), args.optional(1, parse_bool, False)
        try:
            header = self._header_by_hash(block_hash)
        except RpcError:
            return None
        return self._block_json(self._block(header.block_number), full)

    def _eth_gas_price(self, params: list[Json]) -> str:
        _Params(params, 0)
        return hex((self._next_header().base_fee_per_gas or 0) + DEFAULT_PRIORITY_FEE)

    def _eth_max_priority_fee(self, params: list[Json]) -> str:
        _Params(params, 0)
        return hex(DEFAULT_PRIORITY_FEE)

    def _eth_fee_history(self, params: list[Json]) -> dict[str, Any]:
        args = _Params(params, 3)
        count = args.required(0, parse_quantity)
        newest = self._block_number(args.required(1, parse_block_id))
        percentiles = args.optional(2, _parse_percentiles, list[float]())
        if not 1 <= count <= 1024:
            raise RpcError(INVALID_PARAMS, "invalid argument 0: block count must be 1..1024")
        oldest = max(0, newest - count + 1)
        blocks = [self._block(number) for number in range(oldest, newest + 1)]
        next_base_fee = self._chain.create_header_from_parent(
            blocks[-1].header, timestamp=blocks[-1].header.timestamp + 1
        ).base_fee_per_gas
        result: dict[str, Any] = {
            "oldestBlock": hex(oldest),
            "baseFeePerGas": [hex(b.header.base_fee_per_gas or 0) for b in blocks]
            + [hex(next_base_fee or 0)],
            "gasUsedRatio": [b.header.gas_used / b.header.gas_limit for b in blocks],
        }
        if percentiles:
            result["reward"] = [[hex(tip) for tip in self._rewards(b, percentiles)] for b in blocks]
        return result

    def _rewards(self, block: BlockAPI, percentiles: list[float]) -> list[int]:
        """Priority fees paid at each gas-weighted percentile of the block (eth_feeHistory ``reward``)."""
        base_fee = block.header.base_fee_per_gas or 0
        paid: list[tuple[int, int]] = []
        previous = 0
        for _, tx, receipt, _ in self._block_logs(block):
            paid.append((_effective_gas_price(tx, block.header) - base_fee, receipt.gas_used - previous))
            previous = receipt.gas_used
        if not paid:
            return [0 for _ in percentiles]
        paid.sort()
        cumulative: list[int] = []
        total = 0
        for _, gas in paid:
            total += gas
            cumulative.append(total)
        return [
            paid[min(bisect.bisect_left(cumulative, block.header.gas_used * p / 100), len(paid) - 1)][0]
            for p in percentiles
        ]

    def _eth_get_transaction_count(self, params: list[Json]) -> str:
        args = _Params(params, 2)
        address, block = args.required(0, parse_address), args.optional(1, parse_block_id, LATEST)
        return hex(self._state(block).get_nonce(address))  # type: ignore[arg-type]

    def _eth_get_balance(self, params: list[Json]) -> str:
        args = _Params(params, 2)
        address, block = args.required(0, parse_address), args.optional(1, parse_block_id, LATEST)
        return hex(self._state(block).get_balance(address))  # type: ignore[arg-type]

    def _eth_get_code(self, params: list[Json]) -> str:
        args = _Params(params, 2)
        address, block = args.required(0, parse_address), args.optional(1, parse_block_id, LATEST)
        return _hex(self._state(block).get_code(address))  # type: ignore[arg-type]

    def _eth_get_storage_at(self, params: list[Json]) -> str:
        args = _Params(params, 3)
        address, slot = args.required(0, parse_address), args.required(1, parse_quantity)
        block = args.optional(2, parse_block_id, LATEST)
        return _word(self._state(block).get_storage(address, slot))  # type: ignore[arg-type]

    def _eth_call(self, params: list[Json]) -> str:
        args = _Params(params, 3)
        request, block = args.required(0, parse_tx_request), args.optional(1, parse_block_id, LATEST)
        if len(params) > 2 and params[2] is not None:
            raise RpcError(INVALID_PARAMS, "invalid argument 2: state overrides are not supported")
        return _hex(self._execute(request, block).output)

    def _eth_estimate_gas(self, params: list[Json]) -> str:
        args = _Params(params, 2)
        request, block = args.required(0, parse_tx_request), args.optional(1, parse_block_id, LATEST)
        return hex(self._estimate(request, block))

    def _eth_send_raw_transaction(self, params: list[Json]) -> str:
        raw = _Params(params, 1).required(0, parse_data)
        if raw[:1] == b"\x03":
            raise RpcError(INVALID_PARAMS, "blob transactions are not supported by the development chain")
        try:
            transaction = self._chain.get_vm().get_transaction_builder().decode(raw)
            transaction.validate()  # recovers the sender: a bad signature is the caller's error, not ours
        except Exception as exc:  # rlp, py-evm and eth-keys each raise their own kinds for bad bytes
            raise RpcError(INVALID_PARAMS, f"invalid raw transaction: {exc}") from None
        self._mine([transaction])
        return _hex(transaction.hash)

    def _eth_send_transaction(self, params: list[Json]) -> str:
        request = _Params(params, 1).required(0, parse_tx_request)
        transaction = self._signer_for(request)
        self._mine([transaction])
        return _hex(transaction.hash)

    def _eth_get_transaction_by_hash(self, params: list[Json]) -> dict[str, Any] | None:
        found = self._locate(_Params(params, 1).required(0, parse_hash))
        if found is None:
            return None
        block, index = found
        return self._tx_json(block.transactions[index], block.header, index)

    def _eth_get_transaction_receipt(self, params: list[Json]) -> dict[str, Any] | None:
        found = self._locate(_Params(params, 1).required(0, parse_hash))
        return None if found is None else self._receipt_json(*found)

    def _eth_get_logs(self, params: list[Json]) -> list[dict[str, Any]]:
        query = _Params(params, 1).required(0, parse_log_filter)
        if query.block_hash is not None:
            only = self._header_by_hash(query.block_hash).block_number
            numbers = range(only, only + 1)
        else:
            numbers = range(self._block_number(query.from_block), self._block_number(query.to_block) + 1)
        found: list[dict[str, Any]] = []
        for number in numbers:
            block = self._block(number)
            for index, tx, receipt, first_log in self._block_logs(block):
                found.extend(self._logs_json(block, index, tx, receipt, first_log, query))
        return found


def _parse_percentiles(value: Json) -> list[float]:
    if not isinstance(value, list) or len(value) > 100:
        raise ValueError("expected a list of at most 100 percentiles")
    percentiles: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float) or not 0 <= item <= 100:
            raise ValueError("percentiles are numbers from 0 to 100")
        if percentiles and item < percentiles[-1]:
            raise ValueError("percentiles must be in ascending order")
        percentiles.append(float(item))
    return percentiles


def _word_bloom(bloom: int) -> str:
    return "0x" + bloom.to_bytes(256, "big").hex()


def _effective_gas_price(tx: SignedTransactionAPI, header: BlockHeaderAPI) -> int:
    if (tx.type_id or 0) >= 2:
        return min(tx.max_fee_per_gas, tx.max_priority_fee_per_gas + (header.base_fee_per_gas or 0))
    return tx.gas_price


def _execution_error(computation: ComputationAPI) -> RpcError:
    """geth's shapes: code 3 + revert data for a revert, -32000 + a reason for anything else."""
    error = computation.error
    if isinstance(error, Revert):
        data = computation.output
        message = "execution reverted"
        if data[:4] == ERROR_STRING_SELECTOR:
            try:
                (reason,) = decode(["string"], data[4:])
                message = f"execution reverted: {reason}"
            except Exception:  # noqa: S110 - a malformed Error(string) still reports the raw data
                pass
        return RpcError(EXECUTION_REVERTED, message, _hex(data))
    if isinstance(error, OutOfGas):
        return RpcError(SERVER_ERROR, "out of gas")
    return RpcError(SERVER_ERROR, f"execution failed: {type(error).__name__}: {error}")
