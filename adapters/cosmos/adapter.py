"""The Cosmos SDK adapter: watches a chain's blocks for deposits into the escrow multisig.

Owns: `CosmosAdapter`, the `ChainAdapter` reads for one Cosmos SDK chain (blocks through CometBFT
RPC, decoded by `adapters.cosmos.watcher`). Releases from the escrow are proposals signed with
`adapters.cosmos.release` (legacy amino JSON multisig).
Must not import another chain's adapter, the ledger or the relayer.
"""

from __future__ import annotations

from adapters.base import BlockRef, LockEvent, PreparedTx, TxStatus
from adapters.cosmos import finality, watcher
from adapters.cosmos.config import CosmosChainConfig
from adapters.cosmos.rpc import CometRpc
from adapters.errors import RpcUnavailable, Unsupported, WrongChain


class CosmosAdapter:
    """One Cosmos SDK chain through one node.

    Args:
        config: the ``[[cosmos]]`` table.
        rpc: a node client to use instead of one built from the config (tests).
        read_attempts, read_deadline_s: retry bounds of reads.
    """

    def __init__(self, config: CosmosChainConfig, *, rpc: CometRpc | None = None,
                 read_attempts: int = 4, read_deadline_s: float = 30.0) -> None:
        self.config = config
        self.chain = config.caip2
        self.confirmation_depth = config.confirmation_depth
        self.escrow = config.escrow_address
        self.rpc = rpc or CometRpc(config.rpc_url, config.rest_url, chain=self.chain,
                                   timeout_s=config.request_timeout_s,
                                   read_attempts=read_attempts, read_deadline_s=read_deadline_s)
        self._min_deposit = {d.denom: d.min_deposit for d in config.denoms}

    def verify_chain(self) -> None:
        """Raise `WrongChain` unless the node reports this config's chain id."""
        chain_id, _, _ = self.rpc.status()
        if chain_id != self.config.chain_id:
            raise WrongChain(f"node at {self.config.rpc_url} serves {chain_id}, expected "
                             f"{self.config.chain_id}", chain=self.chain)

    def head(self) -> BlockRef:
        _, height, block_hash = self.rpc.status()
        return BlockRef(height, block_hash)

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
        code, txhash, log = self.rpc.broadcast_tx_sync(prepared.raw)
        if code != 0:
            raise Unsupported(f"broadcast refused code={code}: {log}")
        return txhash

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
