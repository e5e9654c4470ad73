"""EVM HTLC contract calls: lock, redeem and refund on ``contracts/src/HTLC.sol``, and secrets.

Owns: the HTLC id formula in Python (`compute_id`, equal to the contract's ``computeId``), the
signed `lock` / `redeem` / `refund` calls, reading an HTLC (`htlc_info`, `htlc_state`),
deploying the contract on a devnet (`deploy_htlc`), and learning a secret from the chain:
from mined ``Redeemed`` logs (`find_preimage`) or from a redeem still in the mempool
(`pending_preimage`). Contract reverts are translated into `htlc.errors` at this boundary.

Must not: hold a key beyond a call, log a preimage, choose timelocks or swap steps (the swap
machine does), or be imported by the chain-neutral core: this is the one htlc module that
imports web3. The ABI comes from ``contracts/artifacts/HTLC.json`` only.

Conventions (Ferry HTLC rules v1, `htlc.hashlock`): secret = exactly 32 bytes, hashlock = SHA-256(secret)
(32 bytes), timelock = absolute unix time in seconds compared with ``block.timestamp`` (redeem
while ``block.timestamp < timelock``, refund once ``>=``), id = keccak256(abi.encode(sender,
recipient, token, amount, hashlock, timelock, chainid, contract)). Addresses are returned as
lowercase ``0x`` hex; the native coin is ``NATIVE_TOKEN`` (the zero address).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import eth_abi
import eth_abi.exceptions
from eth_account import Account
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.types import BlockIdentifier, RPCEndpoint

from adapters.base import NATIVE_TOKEN
from adapters.errors import (
    ChainError,
    HtlcError,
    RpcUnavailable,
    SubmissionReverted,
    Unsupported,
    ValidationError,
)
from adapters.evm.calls import hex_address
from adapters.evm.devnet import deploy, transact
from contracts import load_artifact
from htlc.errors import (
    BadPreimage,
    HtlcAlreadySettled,
    HtlcExpired,
    HtlcNotExpired,
    TimelockTooShort,
    UnknownHtlc,
)

__all__ = [
    "NATIVE_TOKEN",
    "REDEEMED_TOPIC",
    "REDEEM_SELECTOR",
    "EvmHtlc",
    "HtlcState",
    "compute_id",
    "deploy_htlc",
    "find_preimage",
    "htlc_contract",
    "htlc_info",
    "htlc_state",
    "lock",
    "pending_preimage",
    "redeem",
    "refund",
]

logger = logging.getLogger(__name__)

PREIMAGE_BYTES = 32
HASHLOCK_BYTES = 32
ID_BYTES = 32
# Solidity ABI spec, "Function Selector": first 4 bytes of keccak256 of the signature.
REDEEM_SELECTOR = keccak(text="redeem(bytes32,bytes)")[:4]
# Topic 0 of `Redeemed(bytes32 indexed id, bytes32 preimage)` (Solidity ABI spec, "Events").
REDEEMED_TOPIC = keccak(text="Redeemed(bytes32,bytes32)")
_ID_TYPES = ["address", "address", "address", "uint256", "bytes32", "uint256", "uint256", "address"]
_METHOD_NOT_FOUND = -32601  # JSON-RPC 2.0 spec, section 5.1

# Contract custom error -> the htlc.errors class it means (everything else: SubmissionReverted).
_REVERTS: dict[str, type[HtlcError]] = {
    "BadPreimageLength": BadPreimage,
    "WrongPreimage": BadPreimage,
    "Expired": HtlcExpired,
    "NotExpired": HtlcNotExpired,
    "AlreadySettled": HtlcAlreadySettled,
    "UnknownHtlc": UnknownHtlc,
    "TimelockNotInFuture": TimelockTooShort,
}


class HtlcState(IntEnum):
    """``HTLC.State`` as the contract stores it (Solidity enum = uint8, declaration order).

    Mirrors on-chain values, so it is an `IntEnum`, not a persisted swap status.
    """

    NONE = 0
    LOCKED = 1
    REDEEMED = 2
    REFUNDED = 3


@dataclass(frozen=True, slots=True)
class EvmHtlc:
    """One HTLC as ``htlcs(id)`` returns it.

    Attributes:
        sender: who locked, and who a refund pays (lowercase ``0x`` hex).
        recipient: who a redeem pays (lowercase ``0x`` hex).
        token: ERC-20 address, or ``NATIVE_TOKEN`` for the native coin.
        amount: base units (wei or token units) escrowed.
        hashlock: SHA-256 of the 32-byte secret (32 bytes).
        timelock: absolute unix time, seconds.
        state: `HtlcState`; all other fields are zero when it is ``NONE``.
    """

    sender: str
    recipient: str
    token: str
    amount: int
    hashlock: bytes
    timelock: int
    state: HtlcState


def htlc_contract(w3: Web3, address: str) -> Contract:
    """Bind the ``HTLC`` ABI (from its artifact) to `address` on `w3`.

    Raises:
        ValidationError: `address` is not a 20-byte ``0x`` hex address.
        ConfigError: the artifact is missing (run ``node contracts/build.js``).
    """
    checksum = Web3.to_checksum_address(hex_address(address, "htlc contract"))
    return w3.eth.contract(address=checksum, abi=load_artifact("HTLC").abi)


def deploy_htlc(w3: Web3, *, sender_key: str) -> str:
    """Deploy ``HTLC`` (no constructor arguments), signed with `sender_key`.

    Devnet helper, like `adapters.evm.devnet.deploy_bridge`.

    Args:
        sender_key: deployer private key, 32 bytes as ``0x`` hex.

    Returns:
        The contract address, lowercase ``0x`` hex.

    Raises:
        SubmissionReverted: deployment reverted. RpcUnavailable: the node did not answer.
    """
    return deploy(w3, "HTLC", sender_key=sender_key)


def compute_id(
    *, chain_id: int, contract: str, sender: str, recipient: str, token: str, amount: int,
    hashlock: bytes, timelock: int,
) -> bytes:
    """The HTLC id the contract requires: keccak256(abi.encode(sender, recipient, token, amount,
    hashlock, timelock, chain_id, contract)) (the contract's `computeId`; Solidity ABI spec,
    strict ``abi.encode``: every value one 32-byte word). Pure: no network.

    Args:
        chain_id: EIP-155 chain id of the chain the contract lives on.
        contract: HTLC contract address; sender, recipient, token: ``0x`` hex addresses.
        amount: base units, 0 < amount < 2**256.
        hashlock: SHA-256 of the secret, 32 bytes.
        timelock: absolute unix time, seconds, 0 <= timelock < 2**256.

    Returns:
        The 32-byte id.

    Raises:
        ValidationError: a bad address, hashlock length, or out-of-range integer.
    """
    if len(hashlock) != HASHLOCK_BYTES:
        raise ValidationError(f"hashlock must be {HASHLOCK_BYTES} bytes, got {len(hashlock)}")
    if not 0 < amount < 2**256:
        raise ValidationError(f"amount out of range: {amount}")
    if not (0 <= timelock < 2**256 and 0 <= chain_id < 2**256):
        raise ValidationError("timelock or chain id out of uint256 range")
    values = [hex_address(sender, "sender"), hex_address(recipient, "recipient"),
              hex_address(token, "token"), amount, bytes(hashlock), timelock, chain_id,
              hex_address(contract, "contract")]
    return keccak(eth_abi.encode(_ID_TYPES, values))


def lock(
    w3: Web3, contract: Contract, *, recipient: str, token: str, amount: int, hashlock: bytes,
    timelock: int, sender_key: str, gas: int | None = None,
) -> tuple[bytes, str]:
    """Lock `amount` of `token` for `recipient` under `hashlock` until `timelock`.

    The native coin (``token == NATIVE_TOKEN``) is sent as the call's value; for an ERC-20 the
    sender must have approved the HTLC contract for `amount` beforehand. Fee-on-transfer
    tokens are refused on chain (``AmountNotReceived``): the escrow must be exact.

    Args:
        contract: the HTLC contract (see `htlc_contract`).
        recipient: who a redeem pays, ``0x`` hex.
        token: ERC-20 address, or ``NATIVE_TOKEN``.
        amount: base units, > 0.
        hashlock: SHA-256 of the 32-byte secret (32 bytes).
        timelock: absolute unix time in seconds; must be later than the mining block's
            ``block.timestamp`` (SECURITY: the caller chooses it with its safety margin).
        sender_key: the locker's private key, 32 bytes as ``0x`` hex; also a refund's payee.
        gas: gas limit; None estimates (a revert then raises before anything is sent).

    Returns:
        ``(id, tx_hash)``: the 32-byte HTLC id and the ``0x`` hex transaction hash.

    Raises:
        ValidationError: bad argument (see `compute_id`).
        TimelockTooShort: the contract refused a timelock not after ``block.timestamp``.
        SubmissionReverted: any other revert (e.g. ``HtlcExists``, ``ValueMismatch``).
        RpcUnavailable: the node did not answer.
    """
    sender = str(Account.from_key(sender_key).address).lower()
    htlc_id = compute_id(chain_id=_chain_id(w3), contract=contract.address, sender=sender,
                         recipient=recipient, token=token, amount=amount, hashlock=hashlock,
                         timelock=timelock)
    call = contract.functions.lock(
        htlc_id, Web3.to_checksum_address(recipient), Web3.to_checksum_address(token), amount,
        bytes(hashlock), timelock,
    )
    value = amount if hex_address(token, "token") == NATIVE_TOKEN else 0
    tx_hash = _send(w3, call, sender_key=sender_key, value_wei=value, gas=gas)
    logger.info("htlc locked htlc_id=0x%s tx=%s", htlc_id.hex(), tx_hash)
    return htlc_id, tx_hash


def redeem(
    w3: Web3, contract: Contract, htlc_id: bytes, preimage: bytes, *, sender_key: str,
    gas: int | None = None,
) -> str:
    """Redeem HTLC `htlc_id` with `preimage`, paying its recipient; anyone may send it.

    SECURITY: broadcasting publishes `preimage` to the mempool at once; call only when the
    counterpart leg is safe to reveal it for.

    Args:
        htlc_id: the 32-byte id.
        preimage: the secret, exactly 32 bytes (refused locally otherwise, before sending).
        sender_key: pays the gas, 32-byte private key as ``0x`` hex.
        gas: gas limit; None estimates (a revert then raises before anything is sent).

    Returns:
        The ``0x`` hex transaction hash (mined, status 1).

    Raises:
        BadPreimage: not 32 bytes, or its SHA-256 is not the hashlock.
        HtlcExpired: ``block.timestamp >= timelock``.
        HtlcAlreadySettled: already redeemed or refunded. UnknownHtlc: no such id.
        SubmissionReverted: any other revert, or a revert of a mined tx (explicit `gas`).
        RpcUnavailable: the node did not answer.
    """
    _check_id(htlc_id)
    if len(preimage) != PREIMAGE_BYTES:
        raise BadPreimage(f"preimage must be {PREIMAGE_BYTES} bytes, got {len(preimage)}")
    tx_hash = _send(w3, contract.functions.redeem(bytes(htlc_id), bytes(preimage)),
                    sender_key=sender_key, gas=gas)
    logger.info("htlc redeemed htlc_id=0x%s tx=%s", bytes(htlc_id).hex(), tx_hash)
    return tx_hash


def refund(
    w3: Web3, contract: Contract, htlc_id: bytes, *, sender_key: str, gas: int | None = None
) -> str:
    """Refund HTLC `htlc_id` to its sender after its timelock; anyone may send it.

    Args:
        htlc_id: the 32-byte id.
        sender_key: pays the gas, 32-byte private key as ``0x`` hex.
        gas: gas limit; None estimates (a revert then raises before anything is sent).

    Returns:
        The ``0x`` hex transaction hash (mined, status 1).

    Raises:
        HtlcNotExpired: ``block.timestamp < timelock``.
        HtlcAlreadySettled: already redeemed or refunded. UnknownHtlc: no such id.
        SubmissionReverted: any other revert, or a revert of a mined tx (explicit `gas`).
        RpcUnavailable: the node did not answer.
    """
    _check_id(htlc_id)
    tx_hash = _send(w3, contract.functions.refund(bytes(htlc_id)), sender_key=sender_key,
                    gas=gas)
    logger.info("htlc refunded htlc_id=0x%s tx=%s", bytes(htlc_id).hex(), tx_hash)
    return tx_hash


def htlc_info(
    w3: Web3, contract: Contract, htlc_id: bytes, *, block: BlockIdentifier = "latest"
) -> EvmHtlc:
    """Read HTLC `htlc_id` with ``htlcs(id)`` at `block` (a number or a tag).

    Raises:
        ValidationError: `htlc_id` is not 32 bytes. RpcUnavailable: the node did not answer.
        ChainError: the contract answered with data that is not an HTLC record.
    """
    _check_id(htlc_id)
    try:
        raw = contract.functions.htlcs(bytes(htlc_id)).call(block_identifier=block)
        sender, recipient, token, amount, hashlock, timelock, state = raw
        return EvmHtlc(str(sender).lower(), str(recipient).lower(), str(token).lower(),
                       int(amount), bytes(hashlock), int(timelock), HtlcState(state))
    except OSError as exc:  # requests' errors are OSErrors
        raise RpcUnavailable(str(exc), chain=_chain(w3)) from exc
    except (ValueError, TypeError) as exc:
        raise ChainError(f"htlcs() returned no HTLC record: {exc}", chain=_chain(w3)) from exc


def htlc_state(w3: Web3, contract: Contract, htlc_id: bytes) -> HtlcState:
    """The `HtlcState` of `htlc_id` at the latest block (``NONE`` if never locked).

    Raises:
        As `htlc_info`.
    """
    return htlc_info(w3, contract, htlc_id).state


def find_preimage(
    w3: Web3, contract: Contract, htlc_id: bytes, from_block: int,
    to_block: BlockIdentifier = "latest",
) -> bytes | None:
    """The secret revealed by a mined redeem of `htlc_id`, from its ``Redeemed`` log.

    The contract emits ``Redeemed`` only after checking the preimage is 32 bytes and hashes to
    the hashlock, so a log from `contract`'s own address is trusted as is.

    Args:
        from_block: first block to search (e.g. the lock's block); to_block: last (inclusive).

    Returns:
        The 32-byte preimage, or None if no redeem is in the range (refunded, or not yet), or
        `from_block` is above the head.

    Raises:
        ValidationError: `htlc_id` is not 32 bytes.
        RpcUnavailable: the node did not answer.
        ChainError: the node refused the query (e.g. a range over its ``eth_getLogs`` limit).
    """
    _check_id(htlc_id)
    try:
        if from_block > w3.eth.block_number:
            return None  # nodes refuse a range that starts above the head
        logs = w3.eth.get_logs({
            "address": contract.address, "fromBlock": from_block, "toBlock": to_block,
            "topics": [HexBytes(REDEEMED_TOPIC), HexBytes(htlc_id)],
        })
    except OSError as exc:
        raise RpcUnavailable(str(exc), chain=_chain(w3)) from exc
    except Web3RPCError as exc:
        raise ChainError(f"eth_getLogs refused: {exc}", chain=_chain(w3)) from exc
    for log in logs:
        data = bytes(log["data"])
        if not log.get("removed") and len(data) == PREIMAGE_BYTES:
            return data
    return None


def pending_preimage(w3: Web3, contract: Contract, htlc_id: bytes) -> bytes | None:
    """A secret for `htlc_id` seen in an unmined ``redeem`` call in the node's mempool.

    Reads ``txpool_content`` (geth/anvil; "pending" and "queued") and decodes the calldata of
    transactions sent directly to `contract` with the ``redeem(bytes32,bytes)`` selector
    (Solidity ABI spec). A redeem made through another contract is not seen here;
    `find_preimage` sees it once mined.

    SECURITY: mempool contents are attacker-controlled. A candidate is returned only if it is
    32 bytes and its SHA-256 equals the hashlock stored on chain for `htlc_id`, so a bogus
    redeem (which would revert) never yields a secret.

    Returns:
        The verified 32-byte preimage, or None (no such redeem pending, or the HTLC is not
        on chain yet).

    Raises:
        ValidationError: `htlc_id` is not 32 bytes.
        Unsupported: the node has no ``txpool_content`` method.
        RpcUnavailable: the node did not answer. ChainError: the node returned an error.
    """
    info = htlc_info(w3, contract, htlc_id)
    if info.state == HtlcState.NONE:
        return None
    target = str(contract.address).lower()
    for tx in _txpool(w3):
        if str(tx.get("to") or "").lower() != target:
            continue
        candidate = _redeem_preimage(tx.get("input") or tx.get("data") or "", bytes(htlc_id))
        if (candidate is not None and len(candidate) == PREIMAGE_BYTES
                and hashlib.sha256(candidate).digest() == info.hashlock):
            return candidate
    return None


# ---------------------------------------------------------------------------------- internals


def _check_id(htlc_id: bytes) -> None:
    if len(htlc_id) != ID_BYTES:
        raise ValidationError(f"htlc id must be {ID_BYTES} bytes, got {len(htlc_id)}")


def _chain_id(w3: Web3) -> int:
    try:
        return int(w3.eth.chain_id)
    except OSError as exc:
        raise RpcUnavailable(str(exc)) from exc


def _chain(w3: Web3) -> str:
    try:
        return f"eip155:{w3.eth.chain_id}"
    except OSError:
        return "?"


def _send(
    w3: Web3, call: Any, *, sender_key: str, value_wei: int = 0, gas: int | None = None
) -> str:
    """`transact`, with contract reverts that mean an HTLC rule translated to `htlc.errors`."""
    try:
        receipt = transact(w3, call, sender_key=sender_key, value_wei=value_wei, gas=gas)
    except SubmissionReverted as exc:
        name = _revert_error_name(exc)
        error = _REVERTS.get(name or "")
        if error is not None:
            raise error(f"{name}: {exc}") from exc
        raise
    return str(receipt["transactionHash"].to_0x_hex())


def _revert_error_name(exc: SubmissionReverted) -> str | None:
    """Name of the HTLC custom error in the revert data behind `exc`, if there is one."""
    cause = exc.__cause__
    data = cause.data if isinstance(cause, ContractLogicError) else None
    if not isinstance(data, str):
        return None
    for item in load_artifact("HTLC").abi:
        if item.get("type") == "error":
            sig = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
            if data.startswith("0x" + keccak(text=sig)[:4].hex()):
                return str(item["name"])
    return None


def _txpool(w3: Web3) -> list[dict[str, Any]]:
    """Every transaction in ``txpool_content`` (pending and queued), as JSON objects."""
    try:
        reply = w3.provider.make_request(RPCEndpoint("txpool_content"), [])
    except OSError as exc:
        raise RpcUnavailable(str(exc), chain=_chain(w3)) from exc
    error = reply.get("error")
    if error:
        code = error.get("code") if isinstance(error, dict) else None
        if code == _METHOD_NOT_FOUND:
            raise Unsupported(f"node has no txpool_content (chain={_chain(w3)})")
        raise ChainError(f"txpool_content failed: {error}", chain=_chain(w3))
    result = reply.get("result") or {}
    txs: list[dict[str, Any]] = []
    for section in ("pending", "queued"):
        for by_nonce in (result.get(section) or {}).values():
            txs.extend(tx for tx in by_nonce.values() if isinstance(tx, dict))
    return txs


def _redeem_preimage(calldata: str, htlc_id: bytes) -> bytes | None:
    """The preimage argument of a ``redeem(htlc_id, preimage)`` call, else None."""
    try:
        raw = bytes.fromhex(calldata.removeprefix("0x"))
    except ValueError:
        return None
    if raw[:4] != REDEEM_SELECTOR:
        return None
    try:
        call_id, preimage = eth_abi.decode(["bytes32", "bytes"], raw[4:])
    except (eth_abi.exceptions.DecodingError, ValueError):
        return None
    return bytes(preimage) if bytes(call_id) == htlc_id else None
