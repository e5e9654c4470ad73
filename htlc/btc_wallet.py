"""The relayer's Bitcoin swap wallet: a `CoinWallet` that finds its own coins on chain.

Owns: scanning blocks for outputs that pay the wallet's P2WPKH script (BIP-141 v0 keyhash) and
for inputs that spend them, from a configured start height, so a restarted relayer knows its
coins again without a wallet database: its locks' change, redeems and refunds of its HTLC legs,
and top-ups by the operator all arrive as outputs to that one script. Must not sign anything
itself (`CoinWallet.fund` does) nor persist anything.

Rules:
- Only blocks are read (never the mempool), `confirmations` deep (1 = the tip's block counts).
- A coin this wallet spent (`fund`) is never added back, even when the block that created it is
  scanned after the spend (its change can be spent before it confirms).
- Reorgs: a scan walks forward only; a coin from an orphaned block may stay listed until a
  spend of it is refused by the node (`InsufficientFunds`/`SubmissionRejected` are the caller's
  signal to `rescan`). Adequate for a hot wallet topped up by the operator; noted in the docs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bitcoin.core import CBlock, b2lx

from adapters.bitcoin.rpc import BtcRpc
from adapters.bitcoin.tx import Coin
from htlc.legs_bitcoin import CoinWallet

log = logging.getLogger(__name__)
WINDOW = 50  # blocks per batched read


class ScanningWallet(CoinWallet):
    """A `CoinWallet` over one key that keeps itself up to date from the node's blocks.

    Args:
        rpc: client of the Bitcoin node.
        secret: the wallet's 32-byte secp256k1 key. SECURITY: never logged.
        start_height: first block to scan (coins created earlier are never seen).
        confirmations: how deep a block must be before its outputs count (>= 1).
    """

    def __init__(self, rpc: BtcRpc, secret: bytes, start_height: int = 0,
                 confirmations: int = 1) -> None:
        super().__init__(secret)
        self._rpc = rpc
        self._next = max(0, start_height)
        self._confirmations = max(1, confirmations)
        self._spent: set[tuple[str, int]] = set()

    @property
    def next_height(self) -> int:
        """The first height the next `sync` reads."""
        return self._next

    @property
    def balance_sats(self) -> int:
        """Sum of the coins the wallet can spend now, in sat."""
        return sum(c.amount_sats for c in self.coins())

    def coins(self) -> list[Coin]:
        """The spendable coins, largest first."""
        return sorted(self._coins.values(), key=lambda c: (-c.amount_sats, c.txid, c.vout))

    def sync(self) -> int:
        """Read every block from `next_height` to ``tip - confirmations + 1``; returns how many
        coins were added.

        Raises:
            RpcUnavailable / BitcoinRpcError: the node did not answer (nothing is half-read:
                a window is applied only once read whole).
        """
        last = self._rpc.block_count() - self._confirmations + 1
        added = 0
        while self._next <= last:
            end = min(last, self._next + WINDOW - 1)
            for _hash, raw in self._rpc.raw_blocks(self._next, end):
                added += self._apply(CBlock.deserialize(raw).vtx)
            self._next = end + 1
        if added:
            log.info("swap wallet found coins=%d balance_sats=%d", added, self.balance_sats)
        return added

    def fund(self, script_pubkey: bytes, amount_sats: int, fee_rate_sat_vb: int) -> bytes:
        """`CoinWallet.fund` after a `sync`; the coins it spends are remembered as spent."""
        self.sync()
        before = set(self._coins)
        raw = super().fund(script_pubkey, amount_sats, fee_rate_sat_vb)
        self._spent.update(before - set(self._coins))
        return raw

    def rescan(self, start_height: int) -> None:
        """Forget every coin and scan again from `start_height` at the next `sync` (after a
        reorg or a refused spend)."""
        self._coins.clear()
        self._spent.clear()
        self._next = max(0, start_height)

    def _apply(self, txs: Iterable[object]) -> int:
        added = 0
        spk = self.script_pubkey
        for tx in txs:
            for txin in tx.vin:  # type: ignore[attr-defined]
                outpoint = (b2lx(txin.prevout.hash), int(txin.prevout.n))
                if self._coins.pop(outpoint, None) is not None:
                    self._spent.add(outpoint)
            txid = b2lx(tx.GetTxid())  # type: ignore[attr-defined]
            for i, out in enumerate(tx.vout):  # type: ignore[attr-defined]
                if bytes(out.scriptPubKey) == spk and (txid, i) not in self._spent:
                    if (txid, i) not in self._coins:
                        added += 1
                    self._coins[(txid, i)] = Coin(txid, i, int(out.nValue))
        return added
