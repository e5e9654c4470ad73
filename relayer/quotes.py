"""Swap pairs and quotes: the ``[swaps]`` config section and the integer arithmetic of a quote.

Owns: `SwapPair` and `SwapsSection` (the config models; `relayer.config.FerryConfig.swaps`),
`ExpiryHint`, `Quote` and `quote`. Must not read a chain, the clock or a database: a quote
turns a user amount into the relayer's amount and fee; the engine turns the expiry hint into
instants on each chain (`htlc.timelock.height_after` / `time_after`) when it makes the offer,
and re-checks the safety margin (`htlc.timelock.check_timelocks`) before it locks.

Arithmetic: integers in base units only (never a float), every rounding in the relayer's
favour::

    relayer_amount = user_amount * rate_num // rate_den         (rounded down)
    fee            = ceil(relayer_amount * fee_bps / 10_000)     (rounded up)
    lock_amount    = relayer_amount - fee                        (what the relayer locks)

E.g. BTC -> ETH at 20 ETH per BTC: rate_num = 2 * 10**11 (wei per sat), rate_den = 1; with
fee_bps = 30, 150_000 sat quote 3 * 10**16 wei, a fee of 9 * 10**13 wei and a lock of
29_910_000_000_000_000 wei.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from adapters.errors import ValidationError
from ledger.fields import MAX_AMOUNT, parse_chain, parse_token

BPS = 10_000  # basis points in one


class SwapPair(BaseModel):
    """``[[swaps.pairs]]``: one direction of swap the relayer offers. The user locks first on
    `user_chain` (the swap's initiator, longer timelock); the relayer locks on
    `relayer_chain` (the participant, shorter timelock).

    Attributes:
        name: label quoted and stored with each swap, e.g. ``"BTC/ETH"`` (user asset first).
        user_chain, user_asset: CAIP-2 chain id and token (EVM: lowercase 0x address, the
            zero address for the native coin; otherwise a lowercase denom, e.g. ``btc``).
        relayer_chain, relayer_asset: the same for the asset the relayer pays.
        rate_num, rate_den: relayer base units per user base unit, as a fraction (>= 1 each).
        fee_bps: the relayer's fee, in basis points of the relayer amount (0..9999).
        min_amount, max_amount: accepted user amounts, user-asset base units (inclusive).
        user_timelock_s: seconds from the offer to the user leg's expiry.
        relayer_timelock_s: seconds from the offer to the relayer leg's expiry (shorter).
        lock_deadline_s: seconds from the offer after which the relayer no longer locks (the
            offer expires); below `relayer_timelock_s`.
        enabled: whether quotes are given; a disabled pair is refused.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,30}/[A-Za-z0-9._-]{1,30}$")
    user_chain: str
    user_asset: str
    relayer_chain: str
    relayer_asset: str
    rate_num: int = Field(gt=0, le=MAX_AMOUNT)
    rate_den: int = Field(gt=0, le=MAX_AMOUNT)
    fee_bps: int = Field(ge=0, lt=BPS)
    min_amount: int = Field(gt=0, le=MAX_AMOUNT)
    max_amount: int = Field(gt=0, le=MAX_AMOUNT)
    user_timelock_s: int = Field(gt=0)
    relayer_timelock_s: int = Field(gt=0)
    lock_deadline_s: int = Field(gt=0)
    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _lowercase_assets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for key in ("user_asset", "relayer_asset"):
                if isinstance(data.get(key), str):
                    data[key] = data[key].lower()
        return data

    @model_validator(mode="after")
    def _check(self) -> Self:
        where = f"pair {self.name}"
        try:
            parse_chain(self.user_chain, "user_chain")
            parse_chain(self.relayer_chain, "relayer_chain")
            parse_token(self.user_chain, self.user_asset, "user_asset")
            parse_token(self.relayer_chain, self.relayer_asset, "relayer_asset")
        except ValidationError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if (self.user_chain, self.user_asset) == (self.relayer_chain, self.relayer_asset):
            raise ValueError(f"{where}: the user and relayer assets are the same")
        if self.min_amount > self.max_amount:
            raise ValueError(f"{where}: min_amount {self.min_amount} is above "
                             f"max_amount {self.max_amount}")
        if self.user_timelock_s <= self.relayer_timelock_s:
            raise ValueError(f"{where}: user_timelock_s ({self.user_timelock_s}) must be longer "
                             f"than relayer_timelock_s ({self.relayer_timelock_s})")
        if self.lock_deadline_s >= self.relayer_timelock_s:
            raise ValueError(f"{where}: lock_deadline_s ({self.lock_deadline_s}) must be shorter "
                             f"than relayer_timelock_s ({self.relayer_timelock_s})")
        if self.max_amount * self.rate_num // self.rate_den > MAX_AMOUNT:
            raise ValueError(f"{where}: max_amount at this rate exceeds 2**256-1 relayer units")
        return self


class SwapChain(BaseModel):
    """``[[swaps.chains]]``: how the relayer trades on one chain of its pairs.

    Attributes:
        chain: CAIP-2 id (an EVM chain of ``[[chains]]``, a Bitcoin network of
            ``[[bitcoin]]``, or ``ferry:ledger``).
        htlc_address: EVM only: the deployed `HTLC` contract (contracts/src/HTLC.sol), 0x hex.
        block_time_s: expected seconds between blocks, for the timelock safety margin
            (`htlc.timelock.ChainTiming`); default 12 on EVM chains, 600 on Bitcoin, 1 on the
            ledger when unset.
        wallet_start_height: Bitcoin only: the first block the relayer's swap wallet scans for
            its coins (P2WPKH of the swap key).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain: str
    htlc_address: str | None = None
    block_time_s: int | None = Field(default=None, ge=1)
    wallet_start_height: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> Self:
        try:
            parse_chain(self.chain, "chain")
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
        is_evm = self.chain.startswith("eip155:")
        if is_evm and self.htlc_address is None:
            raise ValueError(f"swaps chain {self.chain}: htlc_address is required on EVM chains")
        if self.htlc_address is not None:
            if not is_evm:
                raise ValueError(f"swaps chain {self.chain}: htlc_address is for EVM chains only")
            try:
                parse_token(self.chain, self.htlc_address.lower(), "htlc_address")
            except ValidationError as exc:
                raise ValueError(f"swaps chain {self.chain}: {exc}") from None
        return self


class SwapsSection(BaseModel):
    """``[swaps]``: the pairs the relayer quotes (none by default: no swaps offered), the chains
    it trades on, and its swap keys.

    Attributes:
        keystore: the relayer's swap key file (`validators.keystore` format, encrypted): its
            Ed25519 key is the relayer's ledger account, its secp256k1 key locks, redeems and
            refunds on Bitcoin and EVM chains. Kept apart from the gas key of bridge releases so
            the two never race for an EVM nonce. Required when any pair is configured.
        passphrase: the key file's passphrase (set ``FERRY_SWAPS__PASSPHRASE``; never in a file).
        chains: one entry per chain a pair uses.
        pairs: the directions offered.
    """

    model_config = ConfigDict(extra="forbid")

    keystore: Path | None = None
    passphrase: SecretStr | None = None
    chains: list[SwapChain] = Field(default_factory=list)
    pairs: list[SwapPair] = Field(default_factory=list)

    def chain(self, caip2: str) -> SwapChain:
        """The ``[[swaps.chains]]`` entry of `caip2`.

        Raises:
            ValidationError: none configured.
        """
        for c in self.chains:
            if c.chain == caip2:
                return c
        raise ValidationError(f"no swaps chain {caip2!r}")

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [p.name for p in self.pairs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"swap pair names must be unique: {', '.join(dup)}")
        return self

    @model_validator(mode="after")
    def _chains_cover_pairs(self) -> Self:
        known = {c.chain for c in self.chains}
        if len(known) != len(self.chains):
            raise ValueError("swaps.chains: one entry per chain")
        for p in self.pairs:
            for chain in (p.user_chain, p.relayer_chain):
                if chain not in known:
                    raise ValueError(f"pair {p.name}: no [[swaps.chains]] entry for {chain}")
        if self.pairs and self.keystore is None:
            raise ValueError("swaps.keystore is required when swap pairs are configured")
        return self

    def pair(self, name: str) -> SwapPair:
        """The pair called `name` (enabled or not).

        Raises:
            ValidationError: no such pair.
        """
        for p in self.pairs:
            if p.name == name:
                return p
        raise ValidationError(f"unknown swap pair {name!r}")


@dataclass(frozen=True, slots=True)
class ExpiryHint:
    """Durations from the offer, in seconds, to turn into each chain's instants at offer time.

    Attributes:
        user_timelock_s: to the user leg's expiry (on the user chain).
        relayer_timelock_s: to the relayer leg's expiry (on the relayer chain).
        lock_deadline_s: to the last moment the relayer locks (on the relayer chain).
    """

    user_timelock_s: int
    relayer_timelock_s: int
    lock_deadline_s: int


@dataclass(frozen=True, slots=True)
class Quote:
    """A priced swap (see the module docstring for the arithmetic).

    Attributes:
        pair: the pair's name.
        user_amount: what the user locks, user-asset base units.
        relayer_amount: ``user_amount * rate_num // rate_den``, relayer-asset base units.
        fee: the relayer's fee, relayer-asset base units, taken from `relayer_amount`.
        rate_num, rate_den: the rate used (the swap's terms snapshot it).
        expiries: the timelock durations of the pair.
    """

    pair: str
    user_amount: int
    relayer_amount: int
    fee: int
    rate_num: int
    rate_den: int
    expiries: ExpiryHint

    @property
    def lock_amount(self) -> int:
        """What the relayer locks for the user: ``relayer_amount - fee`` (> 0)."""
        return self.relayer_amount - self.fee


def quote(pair: SwapPair, user_amount: int) -> Quote:
    """Price `user_amount` on `pair`, with integer arithmetic only.

    Args:
        pair: an enabled pair.
        user_amount: user-asset base units (sat, wei, ...), an int.

    Returns:
        The quote; its `lock_amount` is at least 1.

    Raises:
        ValidationError: the pair is disabled, the amount is not an int, is outside
            ``min_amount..max_amount``, or leaves nothing to lock after the fee.
    """
    if not pair.enabled:
        raise ValidationError(f"swap pair {pair.name} is disabled")
    if isinstance(user_amount, bool) or not isinstance(user_amount, int):
        raise ValidationError(f"amount must be an integer in base units, got {user_amount!r}")
    if user_amount < pair.min_amount:
        raise ValidationError(f"{pair.name}: amount {user_amount} is below the minimum "
                              f"{pair.min_amount} (base units of {pair.user_asset})")
    if user_amount > pair.max_amount:
        raise ValidationError(f"{pair.name}: amount {user_amount} is above the maximum "
                              f"{pair.max_amount} (base units of {pair.user_asset})")
    relayer_amount = user_amount * pair.rate_num // pair.rate_den
    fee = -(-relayer_amount * pair.fee_bps // BPS)
    if relayer_amount - fee < 1:
        raise ValidationError(f"{pair.name}: amount {user_amount} is too small: nothing is "
                              "left to lock after the rate and the fee")
    return Quote(pair=pair.name, user_amount=user_amount, relayer_amount=relayer_amount, fee=fee,
                 rate_num=pair.rate_num, rate_den=pair.rate_den,
                 expiries=ExpiryHint(pair.user_timelock_s, pair.relayer_timelock_s,
                                     pair.lock_deadline_s))
