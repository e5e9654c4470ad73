"""What a validator agrees to sign: the decision logic, pure and unit-testable.

Owns: `LockSigner` (Ed25519 lock attestations for the native ledger) and `ReleaseSigner`
(EIP-712 release signatures for an EVM bridge), the payloads they hand to the relayer inbox
(DESIGN.md "Relayer attestation inbox"), and `SigningRefused`.
Must not fetch anything itself except the bridge's current ``setNonce`` through the reader it was
given, post anything, or persist anything: the daemon feeds it what this validator's *own*
adapters and ledger connection observed, and ships what it returns.

SECURITY: every check here is a reason a validator refuses to sign. A refusal raises
`SigningRefused` (a `ValidationError`) carrying a `RefusalReason`, and no signature is produced.
Signing is deterministic (RFC 8032 Ed25519, RFC 6979 secp256k1), so signing the same thing twice
yields the same bytes and re-sending is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Protocol

from adapters.base import LockEvent, asset_key
from adapters.errors import InvalidSignature, ValidationError
from ledger.errors import WrongNetwork
from ledger.fields import CASE_SENSITIVE_NAMESPACES
from ledger.transactions import BurnTx, SignedTx, TxKind, verify_transaction
from validators.attestation import lock_attestation_body, lock_attestation_message, parse_hex
from validators.eip712 import release_digest
from validators.key_signer import KeySigner

logger = logging.getLogger(__name__)

_ZERO_ADDRESS = "0x" + "00" * 20
_UINT256_MAX = 2**256 - 1


class RefusalReason(StrEnum):
    """Why a validator declined to sign. Values are stable (they appear in logs and metrics)."""

    FOREIGN_CHAIN = "foreign_chain"  # a chain this validator does not watch
    FOREIGN_CONTRACT = "foreign_contract"  # not the configured bridge of that chain
    NOT_FINAL = "not_final"  # above the finalized height
    BAD_AMOUNT = "bad_amount"  # zero, negative or above uint256
    BAD_RECIPIENT = "bad_recipient"  # malformed or zero recipient
    BAD_TOKEN = "bad_token"  # origin token is not a 20-byte address
    WRONG_NETWORK = "wrong_network"  # burn tx signed for another Ferry network
    NOT_A_BURN = "not_a_burn"  # ledger tx of another kind
    BAD_USER_SIGNATURE = "bad_user_signature"  # the account's Ed25519 signature fails
    MALFORMED_TX = "malformed_tx"  # the user-signed tx does not parse (ledger.transactions)
    TX_MISMATCH = "tx_mismatch"  # the ledger's record disagrees with the tx the user signed
    WRONG_DEST_CHAIN = "wrong_dest_chain"  # burn would leave for a chain other than the origin
    NOT_CREDITED = "not_credited"  # the adapter reported the deposit as not creditable
    RELEASE_MISMATCH = "release_mismatch"  # a proposed spend does not pay the burn exactly
    CONFLICTING_SPEND = "conflicting_spend"  # could pay a burn twice or spend another burn's coins
    HTLC_NOT_REDEEMED = "htlc_not_redeemed"  # a sweep of a mint-HTLC coin the ledger has not redeemed


class SigningRefused(ValidationError):
    """The validator will not sign this event or burn.

    Attributes:
        reason: the `RefusalReason`.
    """

    code = "signing_refused"

    def __init__(self, reason: RefusalReason, message: str) -> None:
        self.reason = reason
        super().__init__(f"{reason.value}: {message}")


class WatchedChain(Protocol):
    """The parts of a chain's config a signer needs (`adapters.evm.config.EvmChainConfig` fits)."""

    @property
    def caip2(self) -> str: ...

    @property
    def chain_id(self) -> int: ...

    @property
    def bridge_address(self) -> str: ...


class SetNonceReader(Protocol):
    """Reads a bridge's current validator-set nonce (`EvmAdapter.set_nonce` fits)."""

    def set_nonce(self) -> int: ...


class BurnLike(Protocol):
    """A burn as read from the ledger (`ledger.client.BurnRecord` fits)."""

    @property
    def seq(self) -> int: ...

    @property
    def burn_id(self) -> bytes: ...

    @property
    def account(self) -> bytes: ...

    @property
    def asset(self) -> str: ...

    @property
    def origin_chain(self) -> str: ...

    @property
    def origin_token(self) -> str: ...

    @property
    def amount(self) -> int: ...

    @property
    def dest_chain(self) -> str: ...

    @property
    def dest_address(self) -> str: ...

    @property
    def tx(self) -> Mapping[str, str]: ...

    @property
    def signature(self) -> bytes: ...


def _refuse(reason: RefusalReason, message: str) -> SigningRefused:
    return SigningRefused(reason, message)


def _evm_address(value: str, reason: RefusalReason, what: str) -> str:
    """Lowercase a 20-byte ``0x`` address or refuse with `reason`."""
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise _refuse(reason, f"{what} {value!r} is not 0x hex")
    try:
        parse_hex(value, 20)
    except ValidationError as exc:
        raise _refuse(reason, f"{what} {value!r} is not a 20-byte address") from exc
    return value.lower()


class LockSigner:
    """Signs lock attestations for events seen final on this validator's own adapters.

    Args:
        network: Ferry network name (domain separation).
        keys: this validator's keys.
        chains: the chains this validator watches; each names its bridge contract.
    """

    def __init__(self, network: str, keys: KeySigner, chains: Iterable[WatchedChain]) -> None:
        self.network = network
        self._keys = keys
        self._bridges = {c.caip2: c.bridge_address.lower() for c in chains}

    def check(self, event: LockEvent, *, finalized_height: int) -> None:
        """Raise `SigningRefused` unless `event` may be attested.

        SECURITY: `event` must come from this validator's own adapter and `finalized_height`
        from that same adapter's `finalized()`; nothing here can check provenance.
        """
        bridge = self._bridges.get(event.chain)
        if bridge is None:
            raise _refuse(RefusalReason.FOREIGN_CHAIN, f"chain {event.chain} is not watched")
        if event.contract.lower() != bridge:
            raise _refuse(
                RefusalReason.FOREIGN_CONTRACT,
                f"event from {event.contract} on {event.chain}, bridge is {bridge}",
            )
        if event.uncredited is not None:
            raise _refuse(RefusalReason.NOT_CREDITED, f"deposit not credited: {event.uncredited}")
        if event.block_number > finalized_height:
            raise _refuse(
                RefusalReason.NOT_FINAL,
                f"block {event.block_number} above finalized {finalized_height} on {event.chain}",
            )
        if not 0 < event.amount <= _UINT256_MAX:
            raise _refuse(RefusalReason.BAD_AMOUNT, f"amount {event.amount}")
        if len(event.recipient) != 32 or not any(event.recipient):
            raise _refuse(RefusalReason.BAD_RECIPIENT, "recipient must be 32 non-zero bytes")

    def sign(self, event: LockEvent, *, finalized_height: int, epoch: int) -> dict[str, Any]:
        """Attest `event` under validator-set `epoch`.

        Args:
            event: a `Locked` event read by this validator's own adapter.
            finalized_height: that adapter's finalized block number when the event was read.
            epoch: the ledger's current validator-set epoch.

        Returns:
            The inbox payload ``{"kind": "lock", "validator": "0x<ed25519 pub>",
            "signature": "0x<64 B>", "body": lock_attestation_body(network, event, epoch)}``.

        Raises:
            SigningRefused: foreign chain or contract, not final, bad amount or recipient.
        """
        self.check(event, finalized_height=finalized_height)
        signature = self._keys.sign_attestation(
            lock_attestation_message(self.network, event, epoch)
        )
        return {
            "kind": "lock",
            "validator": self._keys.ed25519_public_hex,
            "signature": "0x" + signature.hex(),
            "body": lock_attestation_body(self.network, event, epoch),
        }


def _address_key(chain: str, address: str) -> str:
    """A payout address as compared: exact on case-sensitive chains (Solana's base58: another
    case is another address), lowercase elsewhere."""
    return address if chain.split(":", 1)[0] in CASE_SENSITIVE_NAMESPACES else address.lower()


def check_burn_record(burn: BurnLike, network: str) -> None:
    """Raise `SigningRefused` unless the ledger's record of `burn` is what its account signed.

    SECURITY: trusts the ledger (over this validator's own connection) that the burn was
    applied; checks the user's Ed25519 signature, the network, that the record matches the signed
    body field by field, that the asset is the origin chain's, and that the burn leaves for its
    origin chain with a positive amount.
    """
    tx = burn.tx
    if not isinstance(tx, Mapping) or tx.get("kind") != TxKind.BURN.value:
        raise _refuse(RefusalReason.NOT_A_BURN, f"ledger seq {burn.seq} is not a burn")
    try:
        parsed = verify_transaction(SignedTx(body=dict(tx), signature=burn.signature), network)
    except WrongNetwork as exc:
        raise _refuse(RefusalReason.WRONG_NETWORK, f"burn seq {burn.seq}: {exc}") from exc
    except InvalidSignature as exc:
        raise _refuse(RefusalReason.BAD_USER_SIGNATURE, f"burn seq {burn.seq}: {exc}") from exc
    except ValidationError as exc:
        raise _refuse(RefusalReason.MALFORMED_TX, f"burn seq {burn.seq}: {exc}") from exc
    if not isinstance(parsed, BurnTx):
        raise _refuse(RefusalReason.NOT_A_BURN, f"ledger seq {burn.seq} is not a burn")
    signed = (parsed.burn_id, parsed.account, parsed.asset, parsed.amount, parsed.dest_chain,
              _address_key(parsed.dest_chain, parsed.dest_address))
    recorded = (burn.burn_id, burn.account, burn.asset, burn.amount, burn.dest_chain,
                _address_key(burn.dest_chain, str(burn.dest_address)))
    if signed != recorded:
        raise _refuse(RefusalReason.TX_MISMATCH,
                      f"burn seq {burn.seq}: ledger record disagrees with the user-signed tx")
    if burn.asset != asset_key(burn.origin_chain, burn.origin_token):
        raise _refuse(RefusalReason.TX_MISMATCH,
                      f"asset {burn.asset} is not {burn.origin_chain} origin")
    if burn.dest_chain != burn.origin_chain:
        raise _refuse(RefusalReason.WRONG_DEST_CHAIN,
                      f"dest {burn.dest_chain} is not origin {burn.origin_chain}")
    if not 0 < burn.amount <= _UINT256_MAX:
        raise _refuse(RefusalReason.BAD_AMOUNT, f"amount {burn.amount}")


class ReleaseSigner:
    """Signs EIP-712 `Release` digests for burns read from this validator's ledger connection.

    Args:
        network: Ferry network name; the user's tx must name it.
        keys: this validator's keys.
        chains: the EVM chains this validator watches (chain id and bridge per CAIP-2 id).
        bridges: per CAIP-2 id, a reader of that bridge's current ``setNonce`` over this
            validator's own RPC.
    """

    def __init__(
        self,
        network: str,
        keys: KeySigner,
        chains: Iterable[WatchedChain],
        bridges: Mapping[str, SetNonceReader],
    ) -> None:
        self.network = network
        self._keys = keys
        self._chains = {c.caip2: c for c in chains}
        self._bridges = bridges

    def check(self, burn: BurnLike) -> tuple[WatchedChain, str, str]:
        """Raise `SigningRefused` unless `burn` may be released; return (chain, token, recipient).

        SECURITY: trusts the ledger (over this validator's own connection) that the burn was
        applied; verifies everything the user signed against the record (`check_burn_record`).
        """
        check_burn_record(burn, self.network)
        chain = self._chains.get(burn.origin_chain)
        if chain is None or burn.origin_chain not in self._bridges:
            raise _refuse(RefusalReason.FOREIGN_CHAIN, f"chain {burn.origin_chain} is not watched")
        token = _evm_address(burn.origin_token, RefusalReason.BAD_TOKEN, "origin token")
        recipient = _evm_address(burn.dest_address, RefusalReason.BAD_RECIPIENT, "dest address")
        if recipient == _ZERO_ADDRESS:
            raise _refuse(RefusalReason.BAD_RECIPIENT, "dest address is the zero address")
        return chain, token, recipient

    def sign(self, burn: BurnLike) -> dict[str, Any]:
        """Sign the release of `burn` on its origin chain under the bridge's current set nonce.

        Returns:
            The inbox payload ``{"kind": "release", "validator": "0x<evm addr>",
            "signature": "0x<65 B>", "chain", "burn_id", "token", "recipient",
            "amount": "<int>", "set_nonce": "<int>"}``.

        Raises:
            SigningRefused: see `RefusalReason`.
            RpcUnavailable: reading ``setNonce`` failed (retryable; nothing was signed).
        """
        chain, token, recipient = self.check(burn)
        set_nonce = self._bridges[chain.caip2].set_nonce()
        digest = release_digest(
            chain.chain_id,
            chain.bridge_address.lower(),
            burn_id=burn.burn_id,
            token=token,
            recipient=recipient,
            amount=burn.amount,
            set_nonce=set_nonce,
        )
        signature = self._keys.sign_digest(digest)
        return {
            "kind": "release",
            "validator": self._keys.evm_address,
            "signature": "0x" + signature.hex(),
            "chain": chain.caip2,
            "burn_id": "0x" + burn.burn_id.hex(),
            "token": token,
            "recipient": recipient,
            "amount": str(burn.amount),
            "set_nonce": str(set_nonce),
        }
