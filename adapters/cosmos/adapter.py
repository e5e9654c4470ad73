"""The Cosmos SDK adapter: watches a chain's blocks for deposits into the escrow multisig.

Owns: `CosmosAdapter`, the `ChainAdapter` reads for one Cosmos SDK chain (blocks through CometBFT
RPC, decoded by `adapters.cosmos.watcher`; several nodes through `rpc.MultiCometRpc`: failover
across ``rpc_urls``, and ``rpc_quorum`` nodes agreeing on heights, hashes and scanned blocks).
Releases from the escrow are proposals signed with `adapters.cosmos.release` (legacy amino JSON
multisig).
Must not import another chain's adapter, the ledger or the relayer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace

from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import Tx

from adapters.base import BlockRef, LockEvent, PreparedTx, ReleasePlan, TxStatus
from adapters.cosmos import finality, release, watcher
from adapters.cosmos.config import CosmosChainConfig
from adapters.cosmos.errors import BroadcastRefused, SequenceMismatch
from adapters.cosmos.rpc import CometRpc, MultiCometRpc
from adapters.errors import RpcUnavailable, Unsupported, ValidationError

_CODE_TX_IN_CACHE = 19  # sdkerrors.ErrTxInMempoolCache: the same bytes were already accepted
_CODE_WRONG_SEQUENCE = 32  # sdkerrors.ErrWrongSequence


class CosmosAdapter:
    """One Cosmos SDK chain through one or more nodes (``rpc_url``, ``rpc_urls``).

    Args:
        config: the ``[[cosmos]]`` table.
        rpc: a node client to use instead of those built from the config (tests); a plain
            `CometRpc` keeps its own retry policy (wrapped as the only node, quorum 1).
        read_attempts, read_deadline_s: retry bounds of reads (across the nodes).
    """

    def __init__(self, config: CosmosChainConfig, *, rpc: CometRpc | None = None,
                 read_attempts: int = 4, read_deadline_s: float = 30.0) -> None:
        self.config = config
        self.chain = config.caip2
        self.confirmation_depth = config.confirmation_depth
        self.escrow = config.escrow_address
        if isinstance(rpc, MultiCometRpc):
            self.rpc = rpc
        elif rpc is not None:
            self.rpc = MultiCometRpc([rpc], chain_id=config.chain_id, read_attempts=1)
        else:
            nodes = [CometRpc(url, config.rest_url, chain=self.chain,
                              timeout_s=config.request_timeout_s, read_attempts=1)
                     for url in config.endpoints]
            rest = CometRpc(config.rpc_url, config.rest_url, chain=self.chain,
                            timeout_s=config.request_timeout_s, read_attempts=read_attempts,
                            read_deadline_s=read_deadline_s)
            self.rpc = MultiCometRpc(nodes, chain_id=config.chain_id, rest=rest,
                                     quorum=config.rpc_quorum, read_attempts=read_attempts,
                                     read_deadline_s=read_deadline_s)
        self._min_deposit = {d.denom: d.min_deposit for d in config.denoms}

    def verify_chain(self) -> None:
        """Check that every node serves this config's chain id (CometBFT ``/status``
        ``node_info.network``). A node that is down now is checked before its first use
        instead; no node is ever used unchecked. Call it at process start to fail fast.

        Raises:
            WrongChain: a node serves another chain (the message names its host:port); every
                later call of this adapter raises it too.
            RpcUnavailable: no node could be asked (after bounded retries).
        """
        self.rpc.verify_all()

    def head(self) -> BlockRef:
        """The newest block whose results are stored: CometBFT reports a block as latest
        slightly before its ``block_results`` can be read, so the head is the one below."""
        _, height, _ = self.rpc.status()
        below = max(height - 1, 1)
        block_hash = self.rpc.block_hash(below)
        if block_hash is None:
            raise RpcUnavailable(f"no block at {below}", chain=self.chain)
        return BlockRef(below, block_hash)

    def finalized_number(self, head_number: int) -> int:
        return finality.finalized_height(head_number, self.confirmation_depth)

    def finalized(self, head: BlockRef | None = None) -> BlockRef:
        head = head or self.head()
        number = self.finalized_number(head.number)
        if number == head.number:
            return head
        block_hash = self.block_hash(number)
        if block_hash is None:
            raise RpcUnavailable(f"no block at {number} below the head", chain=self.chain)
        return BlockRef(number, block_hash)

    def block_hash(self, number: int) -> str | None:
        return self.rpc.block_hash(number)

    def lock_events(self, from_block: int, to_block: int) -> list[LockEvent]:
        """Deposits to the escrow in blocks ``[from_block, to_block]`` (credited ones, and
        reported ones carrying their reason), read in two batched round trips."""
        events: list[LockEvent] = []
        for block in self.rpc.blocks(from_block, to_block):
            events.extend(watcher.deposits_in_block(
                block.height, block.hash, block.txs, block.codes, chain=self.chain,
                escrow=self.escrow, min_deposit=self._min_deposit))
        return events

    def tx_status(self, tx_hash: str) -> TxStatus:
        found = self.rpc.tx(tx_hash)
        _, head, _ = self.rpc.status()
        head -= 1  # as `head`
        return finality.tx_status(
            included_at=None if found is None else found["height"],
            code=None if found is None else found["code"], head=head,
            confirmation_depth=self.confirmation_depth)

    def validator_set(self) -> tuple[int, tuple[str, ...], int]:
        """(1, escrow member pubkeys hex sorted, threshold): the escrow comes from config."""
        return 1, tuple(sorted(self.config.validator_pubkeys)), self.config.threshold

    # ------------------------------------------------------------------ not (yet) on Cosmos
    def prepare_release(self, order: object) -> PreparedTx:
        raise Unsupported("Cosmos releases are multisig proposals")

    def broadcast(self, prepared: PreparedTx) -> str:
        """Send signed bytes once (CheckTx). Already in the mempool or cache counts as sent.

        Raises:
            SequenceMismatch: the escrow's sequence moved on (re-plan at the new one).
            BroadcastRefused: any other refusal. RpcUnavailable: node down.
        """
        code, txhash, log = self.rpc.broadcast_tx_sync(prepared.raw)
        if code in (0, _CODE_TX_IN_CACHE):
            return txhash
        if code == _CODE_WRONG_SEQUENCE:
            raise SequenceMismatch(log, chain=self.chain)
        raise BroadcastRefused(f"code={code}: {log}", chain=self.chain)

    # ------------------------------------------------------------------ escrow releases
    key_type = "secp256k1"  # escrow members are the validators' secp256k1 keys
    signing_timeout_s = None  # any m members' signatures complete a plan: no re-planning

    def plan_signers(self, plan: ReleasePlan) -> tuple[str, ...]:
        """Empty: an amino multisig plan does not name its signers."""
        return ()

    @property
    def threshold(self) -> int:
        return self.config.threshold

    def members(self) -> tuple[str, ...]:
        return tuple(sorted(self.config.validator_pubkeys))

    def escrow_account(self) -> tuple[int, int] | None:
        """(account number, sequence) of the escrow on chain; None before its first deposit."""
        return self.rpc.account(self.escrow)

    def current_sequence(self) -> int | None:
        """The escrow's account sequence: what the next release must sign at (None before the
        escrow's first deposit)."""
        account = self.escrow_account()
        return None if account is None else account[1]

    def sequence_consumed(self, sequence: int | str) -> bool:
        """Whether a transaction of the escrow already used `sequence` (sequences only grow)."""
        current = self.current_sequence()
        return current is not None and current > int(sequence)

    @staticmethod
    def tx_id(raw: bytes) -> str:
        """The hash a signed transaction is known by: sha256 of its bytes, lowercase hex."""
        return hashlib.sha256(raw).hexdigest()

    def plan_release(self, dest_address: str, token: str, amount: int, burn_id: str, *,
                     avoid: frozenset[str] = frozenset()) -> ReleasePlan:
        """The unsigned release of `amount` `token` to `dest_address` for `burn_id`, at the
        escrow's current account sequence. The plan's id (``txid``) is sha256 of its sign bytes.
        `avoid` is ignored: an amino multisig takes any m members' signatures.

        Raises:
            InvalidAddress: `dest_address` is not an address of this chain.
            ValidationError: the escrow does not exist yet (nothing was ever deposited).
        """
        account = self.escrow_account()
        if account is None:
            raise ValidationError(f"escrow {self.escrow} has no account on chain yet")
        unsigned = release.build_release(
            self.config.chain_id, self._pubkeys, self.config.threshold, account[0], account[1],
            dest_address, token, amount, self._fee, _memo(burn_id),
            prefix=self.config.bech32_prefix)
        return self._plan(unsigned, amount)

    def check_release(self, plan: ReleasePlan, *, dest_address: str, amount: int, token: str,
                      burn_id: str) -> None:
        """SECURITY (validators): the plan's sign bytes pay exactly the burn (`dest_address`,
        `amount` of `token`) with this escrow, a fee within the config's and memo naming it.

        Raises:
            CosmosReleaseMismatch: anything else.
        """
        if plan.chain != self.chain or _digest_hex(plan.unsigned) != plan.txid:
            raise release.CosmosReleaseMismatch("the plan's id or chain is not its sign doc's")
        release.check_release(
            plan.unsigned, chain_id=self.config.chain_id, escrow=self.escrow,
            to_address=dest_address, denom=token, amount=amount,
            max_fee=release.Coin(self.config.fee_denom, self.config.fee_amount),
            burn_id_memo=_memo(burn_id), prefix=self.config.bech32_prefix)

    def memo_at_sequence(self, sequence: int) -> str | None:
        """The memo of the escrow's transaction that consumed `sequence` (CometBFT event
        ``tx.acc_seq``), or None if no such transaction is on chain."""
        found = self.rpc.tx_search(f"tx.acc_seq='{self.escrow}/{sequence}'", per_page=1)
        return Tx.FromString(found[0]).body.memo if found else None

    def refund_of(self, deposit_ref: str) -> tuple[str, str, int] | None:
        """SECURITY (validators and relayer): (sender, denom, amount to refund) of deposit
        ``<txhash>/<index>`` as this node shows it, if it is a deposit to the escrow that was
        reported for a bad memo, else None. The refund is the deposit less the release fee when
        the fee is paid in the same denom; nothing if that leaves nothing."""
        txhash, _, index = deposit_ref.partition("/")
        found = self.rpc.tx(txhash)
        if found is None or found["code"] != 0:
            return None
        events = watcher.deposits_in_block(
            found["height"], "", (found["raw"],), (0,), chain=self.chain, escrow=self.escrow,
            min_deposit=self._min_deposit)
        match = [e for e in events if str(e.log_index) == index and e.tx_hash == txhash.lower()]
        if len(match) != 1 or match[0].uncredited != watcher.BAD_MEMO:
            return None
        e = match[0]
        fee = self.config.fee_amount if self.config.fee_denom == e.token else 0
        return (e.sender, e.token, e.amount - fee) if e.amount > fee else None

    def plan_refund(self, deposit_ref: str) -> ReleasePlan:
        """The unsigned refund of a bad-memo deposit ``<txhash>/<index>`` to its sender.

        Raises:
            ValidationError: not a refundable deposit, or the escrow has no account yet.
        """
        refund = self.refund_of(deposit_ref)
        account = self.escrow_account()
        if refund is None or account is None:
            raise ValidationError(f"deposit {deposit_ref} is not refundable")
        sender, denom, amount = refund
        unsigned = release.build_release(
            self.config.chain_id, self._pubkeys, self.config.threshold, account[0], account[1],
            sender, denom, amount, self._fee, _refund_memo(deposit_ref),
            prefix=self.config.bech32_prefix)
        return replace(self._plan(unsigned, amount), kind="refund")

    def check_refund(self, plan: ReleasePlan) -> str:
        """SECURITY (validators): the plan refunds exactly a bad-memo deposit this node shows,
        to its sender; returns the deposit's ``<txhash>/<index>``.

        Raises:
            CosmosReleaseMismatch: anything else.
        """
        memo = str(json.loads(plan.unsigned).get("memo", ""))
        if not memo.startswith(_REFUND_PREFIX):
            raise release.CosmosReleaseMismatch(f"memo {memo!r} names no deposit")
        ref = memo.removeprefix(_REFUND_PREFIX)
        refund = self.refund_of(ref)
        if refund is None:
            raise release.CosmosReleaseMismatch(f"{ref} is not a refundable deposit here")
        sender, denom, amount = refund
        if plan.chain != self.chain or _digest_hex(plan.unsigned) != plan.txid:
            raise release.CosmosReleaseMismatch("the plan's id or chain is not its sign doc's")
        release.check_release(
            plan.unsigned, chain_id=self.config.chain_id, escrow=self.escrow, to_address=sender,
            denom=denom, amount=amount,
            max_fee=release.Coin(self.config.fee_denom, self.config.fee_amount),
            burn_id_memo=memo, prefix=self.config.bech32_prefix)
        return ref

    def plan_sequence(self, plan: ReleasePlan) -> int:
        """The account sequence a plan's sign doc commits to."""
        return int(json.loads(plan.unsigned)["sequence"])

    def release_sighashes(self, plan: ReleasePlan) -> list[bytes]:
        """The one 32-byte digest members sign: sha256(amino JSON sign bytes)."""
        return [hashlib.sha256(plan.unsigned).digest()]

    def verify_release_signatures(self, plan: ReleasePlan, signer: str,
                                  signatures: list[bytes]) -> bool:
        try:
            pubkey = bytes.fromhex(signer.removeprefix("0x"))
        except ValueError:
            return False
        return (signer.removeprefix("0x") in self.members() and len(signatures) == 1
                and release.verify(plan.unsigned, pubkey, signatures[0]))

    def assemble_release(self, plan: ReleasePlan,
                         signatures: Mapping[str, list[bytes]]) -> PreparedTx:
        """The signed TxRaw from at least m members' signatures (`QuorumNotMet` else)."""
        unsigned = self._unsigned(plan)
        raw = release.assemble(unsigned, self._pubkeys, self.config.threshold,
                               {bytes.fromhex(k.removeprefix("0x")): v[0]
                                for k, v in signatures.items() if v})
        return PreparedTx(tx_hash=release.txhash(raw).lower(), raw=raw, sender_nonce=unsigned.sequence)

    @property
    def _pubkeys(self) -> list[bytes]:
        return [bytes.fromhex(k) for k in self.config.validator_pubkeys]

    @property
    def _fee(self) -> release.Fee:
        coins = [release.Coin(self.config.fee_denom, self.config.fee_amount)] \
            if self.config.fee_amount else []
        return release.Fee(coins, self.config.gas_limit)

    def _unsigned(self, plan: ReleasePlan) -> release.UnsignedRelease:
        doc = json.loads(plan.unsigned)
        [msg] = doc["msgs"]
        [coin] = msg["value"]["amount"]
        unsigned = release.build_release(
            doc["chain_id"], self._pubkeys, self.config.threshold, int(doc["account_number"]),
            int(doc["sequence"]), msg["value"]["to_address"], coin["denom"], int(coin["amount"]),
            self._fee, doc["memo"], prefix=self.config.bech32_prefix)
        if unsigned.sign_bytes != plan.unsigned:
            raise release.CosmosReleaseMismatch("the plan's sign doc is not one this escrow makes")
        return unsigned

    def _plan(self, unsigned: release.UnsignedRelease, amount: int) -> ReleasePlan:
        return ReleasePlan(
            kind="release", chain=self.chain, txid=unsigned.digest().hex(),
            unsigned=unsigned.sign_bytes, coins=(), dest_address=unsigned.to_address,
            amount=amount, payee_amount=amount, fee=self.config.fee_amount, fee_rate=0,
            change=0, version=unsigned.sequence)

    def submit_release(self, order: object) -> str:
        raise Unsupported("Cosmos releases are multisig proposals")

    def release_message_hash(self, burn_id: bytes, token: str, recipient: str, amount: int,
                             set_nonce: int) -> bytes:
        raise Unsupported("Cosmos validators sign amino JSON sign docs of a planned release")

    def recover_release_signer(self, message_hash: bytes, signature: bytes) -> str:
        raise Unsupported("signers are checked against the escrow keys, not recovered")

    def is_released(self, burn_id: bytes) -> bool:
        raise Unsupported("the relayer follows a Cosmos release by its tx hash")

    def custody_totals(self, token: str) -> tuple[int, int]:
        raise Unsupported("the escrow's holdings are its bank balance")

    def escrow_balance(self, denom: str) -> int:
        """The escrow's bank balance of `denom` (base units), read from the chain."""
        return self.rpc.balance(self.escrow, denom)


_REFUND_PREFIX = "ferry refund "


def _memo(burn_id: str) -> str:
    return f"ferry release {burn_id}"


def _refund_memo(deposit_ref: str) -> str:
    return _REFUND_PREFIX + deposit_ref


def _digest_hex(sign_bytes: bytes) -> str:
    return hashlib.sha256(sign_bytes).hexdigest()
