"""The per-asset supply check: every wrapped token on the ledger is backed by what its bridge
holds on the origin chain.

Owns: `supply_report` (bridge contracts) and `custody_report` (UTXO vaults: ledger supply ==
the vault's confirmed holdings - pending releases). Must not trust any single party's totals: the ledger's figures come from
the ledger, the custody figures are read from the bridge contract through the chain adapter.

For each asset, with every transfer settled::

    ledger supply == minted - burned == bridge locked - bridge released

In flight, locks not yet minted and burns not yet released make the two sides differ by
exactly those pending amounts; the asset is *backed* as long as supply + unreleased burns
<= locked - released.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from adapters.base import ChainAdapter, Coin


@dataclass(frozen=True, slots=True)
class SupplyLine:
    """One asset's books, base units.

    Attributes:
        asset, symbol: ledger asset key and display symbol.
        supply, minted, burned: from the ledger.
        locked, released: from the bridge on the origin chain.
        pending_mint: locked on chain but not yet minted (locked - minted).
        pending_release: burned on the ledger but not yet released (burned - released).
        balanced: supply == locked - released (true once nothing is in flight).
        backed: supply + pending_release <= locked - released (must always hold).
    """

    asset: str
    symbol: str
    supply: int
    minted: int
    burned: int
    locked: int
    released: int
    pending_mint: int
    pending_release: int
    balanced: bool
    backed: bool

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, int) and not isinstance(v, bool) else v)
                for k, v in asdict(self).items()}


def supply_report(assets: Sequence[Any], adapters: Mapping[str, ChainAdapter]) -> list[SupplyLine]:
    """Compare each ledger asset (from `LedgerClient.assets()`) with its bridge's custody.

    Args:
        assets: objects with asset, symbol, origin_chain, origin_token, supply, minted_total,
            burned_total (ints, base units).
        adapters: CAIP-2 id -> adapter of the asset's origin chain.

    Raises:
        RpcUnavailable: the origin chain could not be read.
    """
    lines = []
    for a in assets:
        adapter = adapters.get(a.origin_chain)
        if adapter is None:
            continue
        locked, released = adapter.custody_totals(a.origin_token)
        lines.append(SupplyLine(
            asset=a.asset, symbol=a.symbol, supply=a.supply, minted=a.minted_total,
            burned=a.burned_total, locked=locked, released=released,
            pending_mint=locked - a.minted_total, pending_release=a.burned_total - released,
            balanced=a.supply == locked - released,
            backed=a.supply + (a.burned_total - released) <= locked - released,
        ))
    return lines


@dataclass(frozen=True, slots=True)
class CustodyLine:
    """One UTXO-custody asset's books (Bitcoin), base units.

    Attributes:
        asset, symbol, supply: from the ledger.
        holdings: the vault's coins that the origin chain's node shows unspent and confirmed
            (each coin read from the node, not taken from the relayer's table).
        pending_release: burned on the ledger, not yet paid out on chain.
        fee_reserve: the operator's top-ups not yet spent on consolidation fees (not backing).
        coins: how many coins were counted; missing: listed coins the node does not show.
        balanced: supply == holdings - pending_release - fee_reserve.
    """

    asset: str
    symbol: str
    supply: int
    holdings: int
    pending_release: int
    fee_reserve: int
    coins: int
    missing: int
    balanced: bool

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, int) and not isinstance(v, bool) else v)
                for k, v in asdict(self).items()}


def custody_report(assets: Sequence[Any],
                   custody: Mapping[str, tuple[Sequence[Coin], int, int]],
                   unspent_value: Mapping[str, Callable[[Coin], int | None]]) -> list[CustodyLine]:
    """Compare each ledger asset of a UTXO chain with the vault's confirmed holdings.

    Args:
        assets: ledger assets (`LedgerClient.assets()`).
        custody: per origin chain, (the coins the vault is said to hold, pending releases,
            fee reserve).
        unspent_value: per origin chain, ``coin -> sats`` as the chain's node shows it unspent
            and confirmed, or None (`BitcoinAdapter.coin_unspent`).

    Raises:
        RpcUnavailable: the node could not be read.
    """
    lines = []
    for a in assets:
        if a.origin_chain not in custody or a.origin_chain not in unspent_value:
            continue
        coins, pending, reserve = custody[a.origin_chain]
        values = [unspent_value[a.origin_chain](c) for c in coins]
        holdings = sum(v for v in values if v is not None)
        lines.append(CustodyLine(
            asset=a.asset, symbol=a.symbol, supply=a.supply, holdings=holdings,
            pending_release=pending, fee_reserve=reserve, coins=len(coins),
            missing=sum(1 for v in values if v is None),
            balanced=a.supply == holdings - pending - reserve))
    return lines
