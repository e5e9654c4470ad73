"""Several btcd nodes behind one `BtcRpc`: failover, agreement of a quorum on the reads that
decide minting, and the wrong-network check (policy and pool: `adapters.multi_rpc`).

Owns: `MultiBtcRpc`. Must not decide what is minted; it only refuses to answer when the nodes
disagree (`RpcDisagreement`) or too few answer (`RpcUnavailable`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from adapters.bitcoin.rpc import BtcRpc
from adapters.multi_rpc import COOLDOWN_S, EndpointPool, PooledClient

log = logging.getLogger(__name__)

class MultiBtcRpc(PooledClient[BtcRpc], BtcRpc):
    """A `BtcRpc` over one or more btcd nodes of one network (policy: `adapters.multi_rpc`).

    Every request goes to one of `nodes` (one `BtcRpc` per node, each trying once); it has no
    HTTP client of its own. Failover: `read` and so every typed read, `request` and
    `request_batch` (each node asked at most once: writes), `send_raw_transaction`.
    SECURITY: agreement of ``quorum`` nodes for the reads that decide minting: `best_block`
    (the lowest of their tips, whose hash the others must have at that height), `block_hash`
    and `raw_blocks`. A node is refused (`WrongChain`, sticky) unless its block 0 is
    `genesis_hash`, checked by `verify_all` or before its first other call.

    Args:
        nodes: one client per node, in configured order (the first is preferred), built with
            ``read_attempts=1``: the retries are this client's.
        genesis_hash: display hex of the configured network's block 0 (BIP-122).
        quorum, read_attempts, read_deadline_s, cooldown_s, clock: see
            `adapters.multi_rpc.EndpointPool`.
    """

    def __init__(self, nodes: Sequence[BtcRpc], *, genesis_hash: str, quorum: int = 1,
                 read_attempts: int = 4, read_deadline_s: float = 30.0,
                 cooldown_s: float = COOLDOWN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # No BtcRpc.__init__: this client has no HTTP connection of its own; every method
        # that would use one is overridden to go through `pool`.
        self.url, self.chain = nodes[0].url, nodes[0].chain
        self.pool: EndpointPool[BtcRpc] = EndpointPool(
            nodes, chain=self.chain, identity=lambda n: n.genesis_hash(), expected=genesis_hash,
            identity_label="getblockhash 0", what="genesis", quorum=quorum,
            read_attempts=read_attempts, read_deadline_s=read_deadline_s,
            cooldown_s=cooldown_s, clock=clock, logger=log)

    def request(self, method: str, params: list[Any]) -> Any:
        return self.pool.send(lambda n: n.request(method, params), method)

    def request_batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        return self.pool.send(lambda n: n.request_batch(calls), "batch")

    def read(self, method: str, params: list[Any]) -> Any:
        return self.pool.read(lambda n: n.read(method, params), method)

    def best_block(self) -> tuple[int, str]:
        """SECURITY: the tip ``rpc_quorum`` nodes agree on: the lowest of their tips, whose
        hash every other node of the quorum has at that height (else `RpcDisagreement`)."""
        return self.pool.agreed_tip(lambda n: n.best_block(), lambda _host, tip: tip,
                                    lambda n, height: n.block_hash(height), "getbestblock")

    def block_hash(self, height: int) -> str | None:
        """SECURITY: the hash at `height` ``rpc_quorum`` nodes agree on (None: above the tip
        of all of them; above only some of them is a disagreement)."""
        if height < 0:
            raise ValueError(f"negative block height {height}")
        return self.pool.agreed(lambda n: n.block_hash(height), lambda h: h, "getblockhash")

    def block_hashes(self, first: int, last: int) -> list[str]:
        """SECURITY: hashes of ``first..last`` that ``rpc_quorum`` nodes agree on."""
        return self.pool.agreed(lambda n: n.block_hashes(first, last), tuple, "getblockhash")

    def raw_blocks(self, first: int, last: int) -> list[tuple[str, bytes]]:
        """SECURITY: blocks ``first..last`` (both batches from one node) whose hashes
        ``rpc_quorum`` nodes agree on; the other nodes are asked only the hashes.

        Comparing hashes suffices: a block hash is the double SHA-256 of the header, which
        commits to the previous block and to the merkle root of the txids (so to every input
        and output); witnesses are committed by the coinbase's witness commitment (BIP-141),
        itself under the merkle root. Two nodes with the same hash at a height therefore have
        the same block, provided the bytes returned really have that hash and match its
        commitments: `BitcoinAdapter.lock_events` checks both before decoding a deposit.
        """
        return self.pool.agreed(lambda n: n.raw_blocks(first, last),
                                lambda blocks: tuple(h for h, _ in blocks), "getblock",
                                check=lambda n: tuple(n.block_hashes(first, last)))
