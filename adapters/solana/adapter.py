"""The Solana adapter: watches the SPL Token multisig's token accounts for deposits and plans,
checks, assembles and sends durable-nonce releases out of its escrow accounts.

Owns: `SolanaAdapter`, the `ChainAdapter` reads for one Solana cluster (through
`adapters.solana.rpc.SolanaRpc`, all at ``finalized`` commitment, decoded by
`adapters.solana.watcher`) and the escrow-release methods the relayer (`relayer.escrow`) and
validators (`validators.escrow_signer`) call, with the same names as
`adapters.cosmos.adapter.CosmosAdapter`. Release messages are built and checked by
`adapters.solana.release`. Must not import another chain's adapter, the ledger or the relayer.

Heights are slots; a block hash is the slot's blockhash (base58). The head the core scans to is
the node's *finalized* slot (not the confirmed one): deposits are read at ``finalized``
commitment, so a range above it would come back incomplete and the scan cursor would skip it.
A release's "sequence" is the durable nonce value (base58) its message uses as blockhash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.token.state import Mint
from solders.transaction import VersionedTransaction

from adapters.base import BlockRef, LockEvent, PreparedTx, ReleasePlan, TxStatus
from adapters.errors import (
    ConfigError,
    RpcUnavailable,
    Unsupported,
    ValidationError,
    WrongChain,
)
from adapters.solana import finality, release, watcher
from adapters.solana.config import SolanaChainConfig, parse_pubkey
from adapters.solana.errors import BroadcastRefused, NonceConsumed, SolanaRpcError
from adapters.solana.rpc import ALREADY_PROCESSED, BLOCKHASH_NOT_FOUND, PAGE_LIMIT, SolanaRpc

MEMO_SEARCH_PAGES = 10  # getSignaturesForAddress pages `memo_at_sequence` looks through
_MEMO_SEARCH_CHUNK = 32  # transactions fetched at once while looking


class Ed25519Signer(Protocol):
    """A key that can sign as the fee payer: `validators.keystore.ValidatorKeys` or any
    `validators.key_signer.KeySigner` (its Ed25519 key)."""

    @property
    def ed25519_public(self) -> bytes: ...

    def sign_attestation(self, message: bytes) -> bytes: ...


class _SignerAsKeypair:
    """The two `Keypair` methods `release.assemble` uses, over an `Ed25519Signer`."""

    def __init__(self, signer: Ed25519Signer) -> None:
        self._signer = signer

    def pubkey(self) -> Pubkey:
        return Pubkey(bytes(self._signer.ed25519_public))

    def sign_message(self, message: bytes) -> Signature:
        return Signature.from_bytes(bytes(self._signer.sign_attestation(bytes(message))))


class SolanaAdapter:
    """One Solana cluster through one JSON-RPC endpoint (``rpc_url``).

    Args:
        config: the ``[[solana]]`` table.
        fee_payer: the relayer's fee-payer key as a signer (`Ed25519Signer`, e.g. the
            `ValidatorKeys` of ``[relayer] solana_keystore``), or None.
        fee_payer_secret: the same key as a 32-byte Ed25519 seed (RFC 8032) or a solders
            `Keypair` (tests, devnet), or None. Only the relayer needs one of the two, to
            `assemble_release`; its public key must be the config's ``fee_payer``.
        rpc: a client to use instead of one built from the config (tests).
        read_attempts, read_deadline_s: retry bounds of reads.

    Raises:
        ConfigError: a fee payer key that is not the configured ``fee_payer``.
    """

    key_type = "ed25519"  # escrow members are the validators' Ed25519 keys

    def __init__(self, config: SolanaChainConfig, *, fee_payer: Ed25519Signer | None = None,
                 fee_payer_secret: bytes | Keypair | None = None, rpc: SolanaRpc | None = None,
                 read_attempts: int = 4, read_deadline_s: float = 30.0) -> None:
        self.config = config
        self.chain = config.caip2
        self.confirmation_depth = config.confirmation_depth
        self.signing_timeout_s: float | None = config.signing_timeout_s  # plans name signers
        self.rpc = rpc or SolanaRpc(config.rpc_url, chain=self.chain,
                                    timeout_s=config.request_timeout_s,
                                    read_attempts=read_attempts, read_deadline_s=read_deadline_s)
        self._multisig = Pubkey.from_string(config.multisig)
        self._nonce_account = Pubkey.from_string(config.nonce_account)
        self._fee_payer_key = Pubkey.from_string(config.fee_payer)
        self._members = [bytes.fromhex(k) for k in config.validator_pubkeys]
        self._min_deposit = {m.mint: m.min_deposit for m in config.mints}
        self._payer: Keypair | _SignerAsKeypair | None = None
        self._verified = False  # `verify_chain` passed (checked before the first scan)
        if isinstance(fee_payer_secret, Keypair):
            self._payer = fee_payer_secret
        elif fee_payer_secret is not None:
            if len(fee_payer_secret) != 32:
                raise ConfigError("fee_payer_secret must be a 32-byte Ed25519 seed")
            self._payer = Keypair.from_seed(bytes(fee_payer_secret))
        elif fee_payer is not None:
            self._payer = _SignerAsKeypair(fee_payer)
        if self._payer is not None and self._payer.pubkey() != self._fee_payer_key:
            raise ConfigError(f"{self.chain}: the fee payer key is {self._payer.pubkey()}, "
                              f"the config's fee_payer is {config.fee_payer}")

    def close(self) -> None:
        self.rpc.close()

    def verify_chain(self) -> None:
        """Check the node and the accounts releases depend on against the config, at
        ``finalized``: the genesis hash; the multisig is an SPL Token `Multisig` with m ==
        ``threshold`` and signers == ``validator_pubkeys``; the nonce account is a System
        nonce account whose authority is ``fee_payer``; each mint is a classic SPL Token mint
        with the configured decimals. Call it at process start to fail fast.

        Raises:
            WrongChain: the node serves another cluster.
            ConfigError: an account is missing or disagrees with the config (says which).
            RpcUnavailable: the node could not be asked (after bounded retries).
        """
        genesis = self.rpc.genesis_hash()
        if genesis != self.config.genesis_hash:
            raise WrongChain(f"{self.config.rpc_url} serves genesis {genesis}, the config "
                             f"says {self.config.genesis_hash}", chain=self.chain)
        m, signers = self._decoded(self.config.multisig, release.TOKEN_PROGRAM, "multisig",
                                   release.decode_multisig)
        if m != self.config.threshold or sorted(signers) != sorted(self._members):
            raise ConfigError(f"{self.chain}: multisig {self.config.multisig} is {m} of "
                              f"{sorted(k.hex() for k in signers)}, the config says "
                              f"{self.config.threshold} of {sorted(self.config.validator_pubkeys)}")
        authority, _ = self._decoded(self.config.nonce_account, SYSTEM_PROGRAM, "nonce account",
                                     release.decode_nonce_account)
        if authority != self.config.fee_payer:
            raise ConfigError(f"{self.chain}: nonce account {self.config.nonce_account} has "
                              f"authority {authority}, the config's fee_payer is "
                              f"{self.config.fee_payer}")
        for mint in self.config.mints:
            decimals = self._decoded(mint.mint, release.TOKEN_PROGRAM, "mint",
                                     lambda data: Mint.from_bytes(data[:82]).decimals)
            if decimals != mint.decimals:
                raise ConfigError(f"{self.chain}: mint {mint.mint} has {decimals} decimals, "
                                  f"the config says {mint.decimals}")

    def _decoded(self, address: str, owner: Pubkey, what: str, decode: Any) -> Any:
        info = self.rpc.account(address)
        if info is None:
            raise ConfigError(f"{self.chain}: {what} {address} does not exist (at finalized)")
        if info.owner != str(owner):
            raise ConfigError(f"{self.chain}: {what} {address} is owned by {info.owner}, "
                              f"not {owner}")
        try:
            return decode(info.data)
        except (ValidationError, ValueError) as exc:
            raise ConfigError(f"{self.chain}: {what} {address} does not decode: {exc}") from exc

    # ------------------------------------------------------------------ reads
    def head(self) -> BlockRef:
        """The node's finalized slot and its blockhash (module docstring: why not confirmed)."""
        slot = self.rpc.slot("finalized")
        block_hash = self._hash_at(slot)
        return BlockRef(slot, block_hash)

    def finalized_number(self, head_number: int) -> int:
        """`head_number` (a finalized slot) less ``confirmation_depth``."""
        return finality.finalized_slot(head_number, self.confirmation_depth)

    def finalized(self, head: BlockRef | None = None) -> BlockRef:
        head = head or self.head()
        number = self.finalized_number(head.number)
        return head if number == head.number else BlockRef(number, self._hash_at(number))

    def block_hash(self, number: int) -> str | None:
        """The blockhash (base58) of slot `number`, None above the finalized slot. A skipped
        slot (no block) answers the blockhash of the newest block below it: what the chain
        was at that slot, stable once finalized."""
        if number > self.rpc.slot("finalized"):
            return None
        return self._hash_at(number)

    def _hash_at(self, slot: int) -> str:
        found = self.rpc.block_hashes([slot])[slot]
        if found is not None:
            return found
        below = self.rpc.newest_block_at_or_below(slot)
        block = None if below is None else self.rpc.block_hashes([below])[below]
        if block is None:
            raise RpcUnavailable(f"no block at or below slot {slot}", chain=self.chain)
        return block

    def escrow_accounts(self) -> dict[str, watcher.EscrowAccount]:
        """Every token account the multisig owns (classic Token and Token-2022, finalized):
        address -> its mint and program, configured mint or not."""
        out: dict[str, watcher.EscrowAccount] = {}
        for program in (release.TOKEN_PROGRAM, release.TOKEN_2022_PROGRAM):
            for address, (mint, _) in self.rpc.token_accounts(self.config.multisig,
                                                               str(program)).items():
                out[address] = watcher.EscrowAccount(mint, str(program))
        return out

    def lock_events(self, from_block: int, to_block: int) -> list[LockEvent]:
        """Transfers into the multisig's token accounts in slots ``[from_block, to_block]``
        (credited ones, and reported ones carrying their reason: `adapters.solana.watcher`),
        read at ``finalized``, in (slot, signature, instruction) order.

        Raises:
            RpcUnavailable: the range ends above the node's finalized slot (ask again later),
                or the node lists a signature it then cannot return.
            WrongChain, ConfigError: `verify_chain` failed (run before the first scan: no
                deposit is read, nor credited, from an escrow the config's validators do not
                control).
        """
        if not self._verified:
            self.verify_chain()
            self._verified = True
        finalized = self.rpc.slot("finalized")
        if to_block > finalized:
            raise RpcUnavailable(f"slots up to {to_block} asked, finalized is {finalized}",
                                 chain=self.chain)
        accounts = self.escrow_accounts()
        slots: dict[str, int] = {}
        for address in sorted(accounts):
            for info in self.rpc.signatures_in_range(address, from_block, to_block):
                slots[info.signature] = info.slot
        if not slots:
            return []
        signatures = sorted(slots)
        encoded = self.rpc.transactions(signatures)
        missing = [s for s, e in zip(signatures, encoded, strict=True) if e is None]
        if missing:
            raise RpcUnavailable(f"getTransaction has no {missing[0]} (listed at finalized)",
                                 chain=self.chain)
        hashes = self.rpc.block_hashes([e.slot for e in encoded if e is not None])
        fetched = []
        for e in encoded:
            assert e is not None  # checked above
            block_hash = hashes.get(e.slot)
            if block_hash is None:
                raise RpcUnavailable(f"no block at slot {e.slot} of a transaction",
                                     chain=self.chain)
            try:
                fetched.append(watcher.from_encoded(e, block_hash))
            except ValueError as exc:
                raise SolanaRpcError(f"getTransaction: {exc}", chain=self.chain) from exc
        return watcher.deposits(fetched, chain=self.chain, multisig=self.config.multisig,
                                escrow_accounts=accounts, min_deposit=self._min_deposit)

    def tx_status(self, tx_hash: str) -> TxStatus:
        """Status of a sent transaction by its signature (base58): FINAL only once its slot is
        finalized (and ``confirmation_depth`` below); FAILED only when final.

        Raises:
            ValidationError: `tx_hash` is not a base58 signature.
        """
        try:
            Signature.from_string(tx_hash)
        except ValueError as exc:
            raise ValidationError(f"not a Solana signature: {tx_hash!r}") from exc
        status = self.rpc.signature_status(tx_hash)
        if status is None:
            return TxStatus.UNKNOWN
        return finality.tx_status(slot=status.slot, failed=status.failed,
                                  rooted=status.commitment == "finalized",
                                  finalized=self.rpc.slot("finalized"),
                                  confirmation_depth=self.confirmation_depth)

    def validator_set(self) -> tuple[int, tuple[str, ...], int]:
        """(1, multisig member keys hex sorted, threshold): the multisig comes from config."""
        return 1, self.members(), self.config.threshold

    @property
    def threshold(self) -> int:
        return self.config.threshold

    def members(self) -> tuple[str, ...]:
        """The multisig's signers: 32-byte Ed25519 keys, lowercase hex, sorted."""
        return tuple(sorted(self.config.validator_pubkeys))

    def escrow_balance(self, mint: str) -> int:
        """The escrow ATA's balance of `mint` (base units, finalized); 0 if it does not exist."""
        balance = self.rpc.token_balance(
            self.config.escrow_of(self.config.mint_config(mint).mint))
        return 0 if balance is None else balance

    # ------------------------------------------------------------------ durable nonce
    def current_sequence(self) -> str | None:
        """The nonce account's durable nonce value (base58) at ``finalized``: the sequence
        the next release must use; None if the account does not exist."""
        info = self.rpc.account(self.config.nonce_account)
        if info is None:
            return None
        return release.decode_nonce_account(info.data)[1]

    def sequence_consumed(self, sequence: int | str) -> bool:
        """Whether the finalized nonce value moved past `sequence` (a value is used once)."""
        return self.current_sequence() != str(sequence)

    def plan_sequence(self, plan: ReleasePlan) -> str:
        """The nonce value (base58) a plan's message commits to (its recent_blockhash)."""
        return release.read_release(plan.unsigned).nonce_value

    def plan_signers(self, plan: ReleasePlan) -> tuple[str, ...]:
        """The members (hex) a plan's message names as signers: all of them must sign."""
        return tuple(k.hex() for k in release.read_release(plan.unsigned).signers)

    def memo_at_sequence(self, sequence: int | str) -> str:
        """SECURITY: the memo of the finalized transaction that consumed nonce value
        `sequence` of this nonce account: the one whose instruction 0 is System
        ``AdvanceNonceAccount`` of this account and whose recent_blockhash is `sequence`
        (another nonce account holding the same value does not count). ``""`` if that
        transaction failed or has no memo. Looks through the newest `MEMO_SEARCH_PAGES`
        pages of the account's signatures.

        Raises:
            ValidationError: no such transaction was found.
        """
        value, before = str(sequence), None
        for _ in range(MEMO_SEARCH_PAGES):
            page = self.rpc.signatures(self.config.nonce_account, before=before)
            for i in range(0, len(page), _MEMO_SEARCH_CHUNK):
                chunk = page[i:i + _MEMO_SEARCH_CHUNK]
                for encoded in self.rpc.transactions([s.signature for s in chunk]):
                    if encoded is None or not self._consumes(encoded, value):
                        continue
                    meta = encoded.transaction.meta
                    if meta is None or meta.err is not None:
                        return ""
                    tx = cast(VersionedTransaction, encoded.transaction.transaction)
                    return release.memo_of(tx) or ""
            if len(page) < PAGE_LIMIT:
                break
            before = page[-1].signature
        raise ValidationError(f"{self.chain}: no finalized transaction consumed nonce value "
                              f"{value}")

    def _consumes(self, encoded: Any, value: str) -> bool:
        try:
            tx = watcher.from_encoded(encoded, "")
        except ValueError:
            return False
        return watcher.consumed_nonce(tx, self.config.nonce_account) == value

    # ------------------------------------------------------------------ escrow releases
    def plan_release(self, dest_address: str, token: str, amount: int, burn_id: str, *,
                     avoid: Sequence[str] = ()) -> ReleasePlan:
        """The unsigned release of `amount` of mint `token` to wallet `dest_address` for
        `burn_id` (``0x`` + 64 hex), at the finalized durable nonce value, signed by m members
        chosen skipping `avoid` (member keys hex) when possible. Plan id (``txid``) = sha256
        of the message, hex.

        Raises:
            InvalidAddress: `dest_address` is not a Solana address. UnknownAsset: `token` is
            not a configured mint. ValidationError: no nonce account, or a bad argument.
        """
        dest = parse_pubkey(dest_address)
        mint = self.config.mint_config(token)
        nonce = self.current_sequence()
        if nonce is None:
            raise ValidationError(f"{self.chain}: nonce account {self.config.nonce_account} "
                                  "does not exist")
        try:
            skip = [bytes.fromhex(k.lower().removeprefix("0x")) for k in avoid]
        except ValueError as exc:
            raise ValidationError(f"avoid holds a key that is not hex: {exc}") from exc
        signers = release.choose_signers(self._members, self.config.threshold, skip)
        message = release.build_release_message(
            fee_payer=self._fee_payer_key, nonce_account=self._nonce_account,
            nonce_value=Hash.from_string(nonce), multisig=self._multisig,
            mint=Pubkey.from_string(mint.mint), decimals=mint.decimals,
            dest_owner=Pubkey.from_string(dest), amount=amount, burn_id_hex=burn_id,
            signers=signers)
        return ReleasePlan(kind="release", chain=self.chain, txid=_digest_hex(message),
                           unsigned=message, coins=(), dest_address=dest, amount=amount,
                           payee_amount=amount, fee=0, fee_rate=0, change=0, version=0)

    def check_release(self, plan: ReleasePlan, *, dest_address: str, amount: int, token: str,
                      burn_id: str) -> None:
        """SECURITY (validators): the plan's message is byte for byte the release this config
        builds for the burn (`dest_address`, `amount` of mint `token`, memo naming
        `burn_id`) at the message's own nonce value, signed by exactly ``threshold`` distinct
        members (`release.check_release_message`). Whether that nonce value may be signed
        is the caller's check (`current_sequence`, `sequence_consumed`, `memo_at_sequence`).

        Raises:
            ValidationError: anything else (InvalidAddress, UnknownAsset included).
        """
        if plan.kind != "release" or plan.chain != self.chain \
                or _digest_hex(plan.unsigned) != plan.txid:
            raise ValidationError("the plan's kind, chain or id is not its message's")
        dest = parse_pubkey(dest_address)
        if plan.dest_address != dest or plan.amount != amount or plan.payee_amount != amount:
            raise ValidationError("the plan's destination or amount is not the burn's")
        mint = self.config.mint_config(token)
        release.check_release_message(
            plan.unsigned, fee_payer=self._fee_payer_key, nonce_account=self._nonce_account,
            multisig=self._multisig, mint=Pubkey.from_string(mint.mint),
            decimals=mint.decimals, dest_owner=Pubkey.from_string(dest), amount=amount,
            burn_id_hex=burn_id, members=self._members, threshold=self.config.threshold)

    def release_sighashes(self, plan: ReleasePlan) -> list[bytes]:
        """What each named member signs: the message bytes themselves (Ed25519, RFC 8032)."""
        return [bytes(plan.unsigned)]

    def verify_release_signatures(self, plan: ReleasePlan, signer: str,
                                  signatures: list[bytes]) -> bool:
        """Whether `signer` (member key hex) is named by the plan and `signatures` is its one
        valid Ed25519 signature of the message."""
        key = signer.lower().removeprefix("0x")
        if key not in self.members() or len(signatures) != 1:
            return False
        try:
            named = release.read_release(plan.unsigned).signers
        except ValidationError:
            return False
        return bytes.fromhex(key) in named and release.verify_signature(
            plan.unsigned, bytes.fromhex(key), signatures[0])

    def assemble_release(self, plan: ReleasePlan,
                         signatures: Mapping[str, list[bytes]]) -> PreparedTx:
        """The wire transaction: the fee payer signs here, the named members' signatures
        (member hex -> [signature]) go in message order. ``tx_hash`` is the base58 fee payer
        signature (the transaction id).

        Raises:
            QuorumNotMet: a named member's signature is missing. InvalidSignature: one does
                not verify. ValidationError: the plan is not a release of this escrow.
            ConfigError: this adapter has no fee payer key.
        """
        if self._payer is None:
            raise ConfigError(f"{self.chain}: no fee payer key to assemble releases with")
        if _digest_hex(plan.unsigned) != plan.txid:
            raise ValidationError("the plan's id is not its message's")
        try:
            sigs = {bytes.fromhex(k.lower().removeprefix("0x")): v[0]
                    for k, v in signatures.items() if v}
        except ValueError as exc:
            raise ValidationError(f"a signer key is not hex: {exc}") from exc
        raw = release.assemble(plan.unsigned, sigs, cast(Keypair, self._payer))
        return PreparedTx(tx_hash=release.tx_signature(raw), raw=raw, sender_nonce=0)

    @staticmethod
    def tx_id(raw: bytes) -> str:
        """The id a signed transaction is known by: its first signature, base58."""
        return release.tx_signature(raw)

    def broadcast(self, prepared: PreparedTx) -> str:
        """Send signed bytes once; returns the signature. The node already having them
        (``AlreadyProcessed``, or its nonce moved because these very bytes landed) counts as
        sent.

        Raises:
            NonceConsumed: ``BlockhashNotFound`` and these bytes never landed: another
                transaction consumed the nonce value (re-plan at the new one).
            BroadcastRefused: any other refusal. RpcUnavailable: node unreachable.
        """
        signature = self.tx_id(prepared.raw)
        try:
            return self.rpc.send_transaction(prepared.raw)
        except BroadcastRefused as exc:
            if exc.reason == ALREADY_PROCESSED:
                return signature
            if exc.reason == BLOCKHASH_NOT_FOUND:
                if self.rpc.signature_status(signature) is not None:
                    return signature
                raise NonceConsumed(f"{signature}: its durable nonce value is no longer "
                                    "current", chain=self.chain) from exc
            raise

    # ------------------------------------------------------------------ not on Solana
    def plan_refund(self, deposit_ref: str) -> ReleasePlan:
        raise ValidationError("refunds of reported deposits are not automated on Solana")

    def check_refund(self, plan: ReleasePlan) -> str:
        raise ValidationError("refunds of reported deposits are not automated on Solana")

    def prepare_release(self, order: object) -> PreparedTx:
        raise Unsupported("Solana releases are multisig proposals")

    def submit_release(self, order: object) -> str:
        raise Unsupported("Solana releases are multisig proposals")

    def release_message_hash(self, burn_id: bytes, token: str, recipient: str, amount: int,
                             set_nonce: int) -> bytes:
        raise Unsupported("Solana members sign a planned release message")

    def recover_release_signer(self, message_hash: bytes, signature: bytes) -> str:
        raise Unsupported("signers are checked against the multisig keys, not recovered")

    def is_released(self, burn_id: bytes) -> bool:
        raise Unsupported("the relayer follows a Solana release by its signature")

    def custody_totals(self, token: str) -> tuple[int, int]:
        raise Unsupported("the escrow's holdings are its token account balances")


def _digest_hex(message: bytes) -> str:
    return hashlib.sha256(bytes(message)).hexdigest()
