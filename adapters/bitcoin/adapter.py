"""The Bitcoin adapter: watches a btcd node for deposits into the vault and spends the vault.

Owns: `BitcoinAdapter` (the `ChainAdapter` reads plus the `UtxoCustody` release capability) and
`DepositRegistry` (which deposit scripts are Ferry's). Block decoding is `adapters.bitcoin.watcher`,
scripts and transactions are `scripts` / `tx`, the nodes are `multi.MultiBtcRpc` (failover across
``rpc_urls``; ``rpc_quorum`` nodes must agree on the tip, block hashes and scanned blocks).
Must not import another chain's adapter, the ledger or the relayer: the registry learns accounts
through the `source` callable it is given.

Observation: `lock_events` refreshes the registry first (so an account registered before its
owner paid is always known when that payment's block is scanned), then reads raw blocks by height,
checks each block's bytes against its hash and commitments (`check_block`), checks each block
links to the previous one (a reorg during the scan raises `RpcUnavailable`: the caller retries),
and decodes deposits (`watcher.deposits_in_block`). Only blocks are read, so an
unconfirmed or replaced (RBF) transaction is never seen. Outpoints key the events, so a deposit
re-mined in another block after a reorg keeps its event id and is credited once.

Release (the `UtxoCustody` methods): plans are built from coins the relayer tracks; validators
check the unsigned transaction against the burn they observed (`check_release`).

HTLC-driven minting: `intents` (`adapters.bitcoin.intents.IntentRegistry`, fed by the ledger's
intent registry) makes funding outputs of mint intents lock events, credited only within the
safety margin by this adapter's own head and `ledger_clock`; a sweep of such a coin into the
vault is a plan of kind ``htlc_sweep`` (`plan_sweep`, `check_sweep`, `assemble_sweep`;
script and witness: `htlc.mint`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping

from bitcoin.core import CBlock, Hash, b2lx
from bitcoin.core.serialize import SerializationError

from adapters.base import (
    BlockRef,
    Clock,
    Coin,
    LockEvent,
    PreparedTx,
    ReleasePlan,
    SystemClock,
    TxStatus,
)
from adapters.bitcoin import finality, tx, watcher
from adapters.bitcoin.config import BitcoinChainConfig
from adapters.bitcoin.errors import ReleaseMismatch
from adapters.bitcoin.intents import IntentRegistry, IntentSource, credit_reason
from adapters.bitcoin.multi import MultiBtcRpc
from adapters.bitcoin.rpc import BtcRpc, BtcRpcError
from adapters.bitcoin.scripts import Vault, script_pubkey_from_address
from adapters.errors import QuorumNotMet, RpcDisagreement, RpcUnavailable, Unsupported
from htlc import mint
from htlc.timelock import ChainTiming

log = logging.getLogger(__name__)

RegistrySource = Callable[[int], list[tuple[int, bytes]]]
SWEEP = "htlc_sweep"  # ReleasePlan.kind of a mint-HTLC coin's sweep into the vault


class DepositRegistry:
    """Deposit scripts of registered accounts, keyed by scriptPubKey. Thread-safe.

    Args:
        vault: the vault the deposit scripts are derived from.
        source: ``after_seq -> [(seq, account)]`` pages of the ledger's registry (ascending),
            or None for a registry fed only by `add`.
    """

    def __init__(self, vault: Vault, source: RegistrySource | None = None) -> None:
        self.vault = vault
        self._source = source
        self._lock = threading.Lock()
        self._by_spk: dict[bytes, bytes] = {}
        self._scripts: set[bytes] = {vault.witness_script}
        self.seq = 0  # the last registry seq consumed from `source`

    def add(self, accounts: Iterable[bytes]) -> int:
        """Derive and remember the deposit scripts of `accounts`; returns how many were new."""
        new = 0
        for account in accounts:
            deposit = self.vault.deposit(account)
            with self._lock:
                if deposit.script_pubkey not in self._by_spk:
                    self._by_spk[deposit.script_pubkey] = account
                    self._scripts.add(deposit.witness_script)
                    new += 1
        return new

    def refresh(self) -> int:
        """Pull registrations after `seq` from the source; returns how many were new."""
        if self._source is None:
            return 0
        new = 0
        while True:
            page = self._source(self.seq)
            if not page:
                return new
            new += self.add(account for _, account in page)
            self.seq = max(seq for seq, _ in page)

    def account_of(self, script_pubkey: bytes) -> bytes | None:
        return self._by_spk.get(script_pubkey)

    def is_custody_script(self, witness_script: bytes) -> bool:
        """Whether `witness_script` is the vault's or a registered deposit script."""
        return witness_script in self._scripts

    def __len__(self) -> int:
        return len(self._by_spk)


class BitcoinAdapter:
    """One Bitcoin network through one or more nodes (``rpc_url``, ``rpc_urls``).

    Args:
        config: the ``[[bitcoin]]`` table.
        rpc: a node client to use instead of those built from the config (tests); a plain
            `BtcRpc` keeps its own retry policy (wrapped as the only node, quorum 1).
        registry_source: see `DepositRegistry`.
        read_attempts, read_deadline_s: retry bounds of reads (across the nodes).
        intent_source: pages of the ledger's mint-intent registry (`IntentRegistry`).
        ledger_clock: the ledger's clock as this process reads it (default: the system clock).
    """

    def __init__(
        self,
        config: BitcoinChainConfig,
        *,
        rpc: BtcRpc | None = None,
        registry_source: RegistrySource | None = None,
        read_attempts: int = 4,
        read_deadline_s: float = 30.0,
        intent_source: IntentSource | None = None,
        ledger_clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.chain = config.caip2
        self.confirmation_depth = config.confirmation_depth
        self.vault: Vault = config.vault
        if isinstance(rpc, MultiBtcRpc):
            self.rpc = rpc
        elif rpc is not None:
            self.rpc = MultiBtcRpc([rpc], genesis_hash=config.genesis_hash, read_attempts=1)
        else:
            nodes = [BtcRpc(url, config.rpc_user, config.rpc_password.get_secret_value(),
                            chain=self.chain, timeout_s=config.request_timeout_s,
                            read_attempts=1, cert=config.rpc_cert) for url in config.endpoints]
            self.rpc = MultiBtcRpc(nodes, genesis_hash=config.genesis_hash,
                                   quorum=config.rpc_quorum, read_attempts=read_attempts,
                                   read_deadline_s=read_deadline_s)
        self.registry = DepositRegistry(self.vault, registry_source)
        self.intents = IntentRegistry(self.vault, self.chain, intent_source)
        self.ledger_clock: Clock = ledger_clock or SystemClock()
        self.timing = ChainTiming(block_time_s=config.htlc_block_time_s,
                                  confirmation_depth=config.confirmation_depth, kind="height")

    # ------------------------------------------------------------------ reads
    def verify_chain(self) -> None:
        """Check that every node serves this config's network (``getblockhash 0`` is its
        genesis hash). A node that is down now is checked before its first use instead; no
        node is ever used unchecked. Call it at process start to fail fast.

        Raises:
            WrongChain: a node serves another network (the message names its host:port);
                every later call of this adapter raises it too.
            RpcUnavailable: no node could be asked (after bounded retries).
        """
        self.rpc.verify_all()

    def head(self) -> BlockRef:
        height, block_hash = self.rpc.best_block()
        return BlockRef(height, block_hash)

    def finalized(self, head: BlockRef | None = None) -> BlockRef:
        head = head or self.head()
        number = finality.finalized_height(head.number, self.confirmation_depth)
        if number == head.number:
            return head
        block_hash = self.rpc.block_hash(number)
        if block_hash is None:
            raise RpcUnavailable(f"no block at {number} below the head", chain=self.chain)
        return BlockRef(number, block_hash)

    def finalized_number(self, head_number: int) -> int:
        """The finalized height under `head_number`, without a request."""
        return finality.finalized_height(head_number, self.confirmation_depth)

    def block_hash(self, number: int) -> str | None:
        return self.rpc.block_hash(number)

    def lock_events(self, from_block: int, to_block: int) -> list[LockEvent]:
        """Deposit outputs in blocks ``[from_block, to_block]``: credited ones, and uncredited
        ones (dust, payments to the bare vault address, coinbase) carrying their reason.

        Raises:
            RpcUnavailable: a block does not link to the previous one (the chain moved during
                the scan), or fewer than ``rpc_quorum`` nodes could be asked.
            RpcDisagreement: the nodes' block hashes differ, or a block's bytes do not match
                its hash and commitments (`check_block`).
        """
        self.registry.refresh()
        self.intents.refresh()
        reason = None
        if len(self.intents):
            head, ledger_now = self.rpc.best_block()[0], self.ledger_clock.now()

            def reason(intent: mint.MintIntent) -> str | None:
                return credit_reason(intent, head=head, ledger_now=ledger_now,
                                     timing=self.timing, extra_s=self.config.htlc_extra_s)
        events: list[LockEvent] = []
        prev_hash: str | None = None
        blocks = self.rpc.raw_blocks(from_block, to_block)  # two batched round trips
        for height, (block_hash, raw) in zip(range(from_block, to_block + 1), blocks,
                                             strict=True):
            check_block(raw, block_hash, height, chain=self.chain)
            found, parent = watcher.deposits_in_block(
                raw, height=height, block_hash=block_hash, chain=self.chain,
                vault=self.vault, registry=self.registry,
                min_deposit_sats=self.config.min_deposit_sats, intents=self.intents,
                intent_reason=reason)
            if prev_hash is not None and parent != prev_hash:
                raise RpcUnavailable(f"block {height} does not extend {prev_hash}: reorg "
                                     "during the scan", chain=self.chain)
            prev_hash = block_hash
            events.extend(found)
        return events

    def tx_status(self, tx_hash: str) -> TxStatus:
        info = self.rpc.transaction_info(tx_hash)
        confirmations = int(info.get("confirmations") or 0) if info else 0
        in_mempool = False
        if confirmations == 0:
            in_mempool = tx_hash in self.rpc.mempool_txids()
        return finality.tx_status(confirmations=confirmations, in_mempool=in_mempool,
                                  confirmation_depth=self.confirmation_depth)

    def coin_depth(self, coin: Coin) -> int | None:
        """Confirmations of `coin` if the node shows it unspent in the best chain, else None."""
        out = self.rpc.tx_out(coin.txid, coin.vout, include_mempool=False)
        return None if out is None else int(out["confirmations"])

    def coin_unspent(self, coin: Coin) -> int | None:
        """The coin's value in sats if the node shows it unspent in the best chain, else None."""
        out = self.rpc.tx_out(coin.txid, coin.vout, include_mempool=False)
        return None if out is None else int(out["value_sats"])

    # ------------------------------------------------------------------ custody (releases)
    def members(self) -> tuple[str, ...]:
        return tuple(k.hex() for k in self.vault.sorted_pubkeys)

    @property
    def threshold(self) -> int:
        return self.vault.threshold

    def validator_set(self) -> tuple[int, tuple[str, ...], int]:
        """(1, vault pubkeys hex, threshold): the vault's members come from config."""
        return 1, self.members(), self.vault.threshold

    def fee_rate(self) -> int:
        """The node's estimate for ``fee_target_blocks`` (sat/vB), else the configured rate;
        never below the configured rate's floor of 1 nor above ``max_fee_rate_sat_vb``."""
        estimate = None
        try:
            estimate = self.rpc.estimate_fee_sat_vb(self.config.fee_target_blocks)
        except BtcRpcError as exc:  # an estimator error is "no estimate", not a failure
            log.info("fee estimate unavailable chain=%s: %s", self.chain, exc)
        rate = estimate if estimate else self.config.fee_rate_sat_vb
        return max(1, min(rate, self.config.max_fee_rate_sat_vb))

    def plan_release(self, coins: list[Coin], dest_address: str, amount: int,
                     fee_rate: int) -> ReleasePlan:
        """Select coins and build the unsigned release of `amount` sats to `dest_address`.

        Raises:
            InvalidAddress: `dest_address` is not an address of this network.
            InsufficientFunds: the coins cannot cover it (or the payee would get dust).
        """
        payee_spk = script_pubkey_from_address(dest_address, self.config.network)
        rate = min(fee_rate, self.config.max_fee_rate_sat_vb)
        chosen = tx.select_coins(_to_tx_coins(coins), amount, fee_rate_sat_vb=rate, payee_spk=payee_spk,
                                 vault=self.vault)
        built = tx.build_release(chosen, payee_spk, amount, rate, self.vault)
        return self._plan("release", built, dest_address, amount, 0)

    def bump_release(self, plan: ReleasePlan, fee_rate: int) -> ReleasePlan:
        built = tx.bump_release(self._unsigned(plan), min(fee_rate, self.config.max_fee_rate_sat_vb),
                                self.vault)
        return self._plan(plan.kind, built, plan.dest_address, plan.amount, plan.version + 1)

    def plan_consolidation(self, coins: list[Coin], fee_rate: int) -> ReleasePlan:
        built = tx.build_consolidation(_to_tx_coins(coins), min(fee_rate, self.config.max_fee_rate_sat_vb),
                                       self.vault)
        return self._plan("consolidation", built, self.vault.address, 0, 0)

    def check_release(self, plan: ReleasePlan, *, dest_address: str, amount: int) -> int:
        """SECURITY (validators): check the unsigned transaction of `plan` pays exactly the
        burn (`dest_address`, `amount`) this validator read from its own ledger connection.

        Returns the fee in sats. Raises `ReleaseMismatch` or `InvalidAddress`.
        """
        self._check_txid(plan)
        payee_spk = script_pubkey_from_address(dest_address, self.config.network)
        return tx.check_release(plan.unsigned, _coins(plan), self.vault,
                                burn_amount_sats=amount, payee_spk=payee_spk,
                                max_fee_rate_sat_vb=self.config.max_fee_rate_sat_vb)

    def check_consolidation(self, plan: ReleasePlan) -> int:
        """SECURITY (validators): the plan only merges coins back into the vault, fee capped."""
        self._check_txid(plan)
        return tx.check_consolidation(plan.unsigned, _coins(plan), self.vault,
                                      self.config.max_fee_rate_sat_vb)

    def release_sighashes(self, plan: ReleasePlan) -> list[bytes]:
        """BIP-143 SIGHASH_ALL digests, one per input (32 bytes each), computed from the plan's
        unsigned transaction and coins. Sign only after a check passed."""
        if plan.kind == SWEEP:
            coin, htlc = self._sweep_coin(plan)
            return [mint.sweep_sighash(plan.unsigned, coin, htlc)]
        return tx.sighashes(plan.unsigned, list(_coins(plan)), self.vault)

    # ------------------------------------------------------------------ HTLC mint sweeps
    def plan_sweep(self, coin: Coin, fee_rate: int) -> ReleasePlan:
        """The unsigned sweep of a funded mint-intent coin (``coin.account`` = intent id) into
        the vault, fee from the coin (kind ``htlc_sweep``; `htlc.mint.build_sweep`).

        Raises:
            ValidationError: the intent is unknown. InsufficientFunds: dust after the fee.
        """
        tx_coin, htlc = self._sweep_coin_of(coin)
        built = mint.build_sweep(tx_coin, htlc, min(fee_rate, self.config.max_fee_rate_sat_vb))
        return ReleasePlan(kind=SWEEP, chain=self.chain, txid=built.txid, unsigned=built.tx,
                           coins=(coin,), dest_address=self.vault.address, amount=0,
                           payee_amount=built.vault_sats, fee=built.fee_sats,
                           fee_rate=built.fee_rate_sat_vb, change=0)

    def check_sweep(self, plan: ReleasePlan) -> tuple[mint.MintHtlc, int]:
        """SECURITY (validators): the sweep spends exactly one coin that this node shows
        unspent, paying this intent's script with the claimed value, into the vault only, fee
        capped (`htlc.mint.check_sweep`).

        Returns:
            (the coin's script, the fee in sats).

        Raises:
            ReleaseMismatch: any of those fails (an unknown intent included).
        """
        self._check_txid(plan)
        if plan.kind != SWEEP or len(plan.coins) != 1:
            raise ReleaseMismatch("a sweep spends exactly one HTLC coin")
        coin, htlc = self._sweep_coin(plan)
        out = self.rpc.tx_out(coin.txid, coin.vout, include_mempool=False)
        if out is None or out["script_pubkey"] != htlc.script_pubkey or (
                out["value_sats"] != coin.amount_sats):
            raise ReleaseMismatch(f"{coin.txid}:{coin.vout} is not an unspent output of "
                                  f"{coin.amount_sats} sats paying the intent's script")
        return htlc, mint.check_sweep(plan.unsigned, coin, htlc, self.config.max_fee_rate_sat_vb)

    def assemble_sweep(self, plan: ReleasePlan, signatures: Mapping[str, list[bytes]],
                       preimage: bytes) -> PreparedTx:
        """The signed sweep: m valid signatures + the 32-byte secret the ledger revealed.

        Raises:
            QuorumNotMet, BadPreimage, ReleaseMismatch: see `htlc.mint.assemble_sweep`.
        """
        coin, htlc = self._sweep_coin(plan)
        sigs = {bytes.fromhex(k.removeprefix("0x")): v[0] for k, v in signatures.items() if v}
        raw = mint.assemble_sweep(plan.unsigned, coin, htlc, sigs, preimage)
        return PreparedTx(tx_hash=plan.txid, raw=raw, sender_nonce=0)

    def _sweep_coin_of(self, coin: Coin) -> tuple[tx.Coin, mint.MintHtlc]:
        htlc = self.intents.htlc_of(coin.account)
        if htlc is None:
            raise ReleaseMismatch(f"coin {coin.outpoint} is not a known mint intent's")
        return tx.Coin(coin.txid, coin.vout, coin.amount, coin.account), htlc

    def _sweep_coin(self, plan: ReleasePlan) -> tuple[tx.Coin, mint.MintHtlc]:
        if len(plan.coins) != 1:
            raise ReleaseMismatch("a sweep spends exactly one HTLC coin")
        return self._sweep_coin_of(plan.coins[0])

    def verify_release_signatures(self, plan: ReleasePlan, signer: str,
                                  signatures: list[bytes]) -> bool:
        try:
            pubkey = bytes.fromhex(signer.removeprefix("0x"))
        except ValueError:
            return False
        if pubkey not in self.vault.sorted_pubkeys or len(signatures) != len(plan.coins):
            return False
        if plan.kind == SWEEP:
            coin, htlc = self._sweep_coin(plan)
            return mint.verify_sweep_signature(plan.unsigned, coin, htlc, pubkey, signatures[0])
        return all(tx.verify_input_signature(plan.unsigned, _coins(plan), self.vault, i,
                                             pubkey, sig) for i, sig in enumerate(signatures))

    def assemble_release(self, plan: ReleasePlan,
                         signatures: Mapping[str, list[bytes]]) -> PreparedTx:
        by_key = {bytes.fromhex(k.removeprefix("0x")): v for k, v in signatures.items()}
        if len(by_key) < self.vault.threshold:
            raise QuorumNotMet(f"{len(by_key)} of {self.vault.threshold} signers")
        raw = tx.assemble(plan.unsigned, _coins(plan), self.vault, by_key)
        return PreparedTx(tx_hash=plan.txid, raw=raw, sender_nonce=0)

    def broadcast(self, prepared: PreparedTx) -> str:
        """Send a signed transaction; idempotent (already known counts as sent).

        Raises:
            FeeTooLow: below the node's relay or replacement fee (bump it).
            TxRejected: refused for good. RpcUnavailable: node down.
        """
        return self.rpc.send_raw_transaction(prepared.raw)

    # ------------------------------------------------------------------ not on Bitcoin
    def prepare_release(self, order: object) -> PreparedTx:
        raise Unsupported("Bitcoin releases are proposals: use plan_release")

    def submit_release(self, order: object) -> str:
        raise Unsupported("Bitcoin releases are proposals: use plan_release")

    def release_message_hash(self, burn_id: bytes, token: str, recipient: str, amount: int,
                             set_nonce: int) -> bytes:
        raise Unsupported("Bitcoin validators sign BIP-143 sighashes of a planned spend")

    def recover_release_signer(self, message_hash: bytes, signature: bytes) -> str:
        raise Unsupported("ECDSA signers are checked against the vault keys, not recovered")

    def is_released(self, burn_id: bytes) -> bool:
        raise Unsupported("Bitcoin keeps no record of burn ids; the relayer follows the txid")

    def custody_totals(self, token: str) -> tuple[int, int]:
        raise Unsupported("the vault's holdings are its coins (relayer.coins)")

    # ------------------------------------------------------------------ helpers
    def _check_txid(self, plan: ReleasePlan) -> None:
        if plan.chain != self.chain or tx.txid_of(plan.unsigned) != plan.txid:
            raise ReleaseMismatch("the plan's txid or chain is not its transaction's")

    def _unsigned(self, plan: ReleasePlan) -> tx.UnsignedRelease:
        return tx.decode_unsigned(plan.unsigned, _coins(plan), self.vault)

    def _plan(self, kind: str, built: tx.UnsignedRelease, dest_address: str, amount: int,
              version: int) -> ReleasePlan:
        return ReleasePlan(
            kind=kind, chain=self.chain, txid=built.txid, unsigned=built.tx,
            coins=tuple(Coin(c.txid, c.vout, c.amount_sats, c.account) for c in built.coins),
            dest_address=dest_address, amount=amount, payee_amount=built.payee_sats,
            fee=built.fee_sats, fee_rate=built.fee_rate_sat_vb, change=built.change_sats,
            version=version)


def check_block(raw: bytes, block_hash: str, height: int, *, chain: str) -> None:
    """SECURITY: check that a serialized block (BIP-144) is the block `block_hash` names: its
    header hashes to it, the txids' merkle root is the header's, no txid repeats (CVE-2012-2459)
    and the witnesses match the coinbase's witness commitment, or there are none without one
    (BIP-141; stripped witnesses would hide that a transaction spends the vault). Then comparing
    block hashes across nodes compares contents (`MultiBtcRpc.raw_blocks`). Proof of work is
    not checked (the nodes validated the chain; regtest has no real work).

    Raises:
        RpcDisagreement: the bytes are not that block (the node's answer contradicts the hash
            the quorum agreed on): nothing is acted on.
    """
    try:
        block = CBlock.deserialize(raw)  # also builds the txid (and wtxid) merkle trees
        count, tree = len(block.vtx), block.vMerkleTree
        if b2lx(block.GetHash()) != block_hash:
            raise ValueError(f"hashes to {b2lx(block.GetHash())}")
        if not count or tree[-1] != block.hashMerkleRoot:
            raise ValueError("its transactions do not make the header's merkle root")
        if len(set(tree[:count])) != count:
            raise ValueError("a txid repeats (CVE-2012-2459)")
        try:
            index = block.get_witness_commitment_index()
        except ValueError:
            if block.vWitnessMerkleTree:
                raise ValueError("witness data without a commitment (BIP-141)") from None
            return
        inputs = block.vtx[0].wit.vtxinwit
        nonce = list(inputs[0].scriptWitness.stack) if inputs else []
        root = (block.vWitnessMerkleTree or CBlock.build_merkle_tree_from_txids(
            [bytes(32), *tree[1:count]]))[-1]
        commitment = bytes(block.vtx[0].vout[index].scriptPubKey)[6:38]
        if len(nonce) != 1 or len(nonce[0]) != 32 or commitment != Hash(root + nonce[0]):
            raise ValueError("its witnesses do not match the coinbase's commitment (BIP-141)")
    except (SerializationError, ValueError, IndexError) as exc:
        raise RpcDisagreement(f"block {height} served for {block_hash} is not that block: "
                              f"{exc}", chain=chain) from exc


def _coins(plan: ReleasePlan) -> list[tx.Coin]:
    return _to_tx_coins(plan.coins)


def _to_tx_coins(coins: Iterable[Coin]) -> list[tx.Coin]:
    return [tx.Coin(c.txid, c.vout, c.amount, c.account) for c in coins]
