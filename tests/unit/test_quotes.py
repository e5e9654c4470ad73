"""Swap quotes: integer arithmetic rounded in the relayer's favour, amount limits, disabled
pairs, and the ``[swaps]`` config section's validation (one clear line per error)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError as PydanticValidationError

from adapters.errors import ConfigError, ValidationError
from relayer.config import load_config
from relayer.quotes import ExpiryHint, SwapChain, SwapPair, SwapsSection, quote

BTC = "bip122:000000000019d6689c085ae165831e93"
ETH = "eip155:1"
ZERO = "0x" + "00" * 20


def pair(**overrides: object) -> SwapPair:
    base: dict[str, object] = {
        "name": "BTC/ETH", "user_chain": BTC, "user_asset": "btc", "relayer_chain": ETH,
        "relayer_asset": ZERO, "rate_num": 200_000_000_000, "rate_den": 1, "fee_bps": 30,
        "min_amount": 100_000, "max_amount": 100_000_000, "user_timelock_s": 86_400,
        "relayer_timelock_s": 43_200, "lock_deadline_s": 3_600}
    base.update(overrides)
    return SwapPair(**base)  # type: ignore[arg-type]


# ------------------------------------------------------------------ arithmetic
@pytest.mark.parametrize("rate_num,rate_den,fee_bps,user_amount,relayer_amount,fee", [
    # 20 ETH per BTC, 0.30 %: exact
    (200_000_000_000, 1, 30, 150_000, 30_000_000_000_000_000, 90_000_000_000_000),
    # the rate rounds down: 7 * 2 / 3 = 4.67 -> 4
    (2, 3, 0, 7, 4, 0),
    # the fee rounds up: 10_001 * 30 / 10_000 = 30.003 -> 31
    (1, 1, 30, 10_001, 10_001, 31),
    # a fee of exactly n units stays n
    (1, 1, 30, 10_000, 10_000, 30),
    # 1 bp of 1 unit is still a whole unit
    (1, 1, 1, 2, 2, 1),
    # no fee
    (3, 1, 0, 5, 15, 0),
    # wei -> sat: 0.0123456789 ETH at 1 sat per 2e11 wei = 61_728.39 -> 61_728 sat; fee 18.5 -> 19
    (1, 200_000_000_000, 3, 12_345_678_900_000_000, 61_728, 19),
    # beyond 64 and 128 bits: exact, no float anywhere
    (3, 7, 9_999, 2**200 + 1, (2**200 + 1) * 3 // 7, -(-((2**200 + 1) * 3 // 7) * 9_999 // 10_000)),
])
def test_quote_is_integer_math_rounded_in_the_relayers_favour(
        rate_num, rate_den, fee_bps, user_amount, relayer_amount, fee):
    p = pair(rate_num=rate_num, rate_den=rate_den, fee_bps=fee_bps, min_amount=1,
             max_amount=2**210)
    q = quote(p, user_amount)
    assert (q.relayer_amount, q.fee, q.lock_amount) == (relayer_amount, fee, relayer_amount - fee)
    assert all(type(v) is int for v in (q.relayer_amount, q.fee, q.lock_amount))
    assert q.relayer_amount * rate_den <= user_amount * rate_num  # never more than the rate
    assert q.fee * 10_000 >= q.relayer_amount * fee_bps  # never less than the fee
    assert (q.pair, q.user_amount, q.rate_num, q.rate_den) == ("BTC/ETH", user_amount, rate_num,
                                                               rate_den)


def test_quote_carries_the_pairs_expiry_hint():
    assert quote(pair(), 150_000).expiries == ExpiryHint(86_400, 43_200, 3_600)


@pytest.mark.parametrize("amount,ok,message", [
    (99_999, False, "amount 99999 is below the minimum 100000 (base units of btc)"),
    (100_000, True, None),
    (100_000_000, True, None),
    (100_000_001, False, "amount 100000001 is above the maximum 100000000 (base units of btc)"),
    (0, False, "below the minimum"),
    (-5, False, "below the minimum"),
    (1.5, False, "must be an integer in base units"),
    (150_000.0, False, "must be an integer in base units"),
    ("150000", False, "must be an integer in base units"),
    (True, False, "must be an integer in base units"),
])
def test_quote_refuses_amounts_outside_the_limits(amount, ok, message):
    if ok:
        assert quote(pair(), amount).user_amount == amount
    else:
        with pytest.raises(ValidationError, match=re.escape(message)):
            quote(pair(), amount)


def test_a_disabled_pair_is_refused_and_an_enabled_one_quoted():
    with pytest.raises(ValidationError, match="swap pair BTC/ETH is disabled"):
        quote(pair(enabled=False), 150_000)
    assert quote(pair(enabled=True), 150_000).lock_amount > 0


def test_an_amount_that_leaves_nothing_after_rate_and_fee_is_refused():
    with pytest.raises(ValidationError, match="nothing is left to lock"):
        quote(pair(rate_num=1, rate_den=1_000, min_amount=1, fee_bps=0), 999)
    with pytest.raises(ValidationError, match="nothing is left to lock"):
        quote(pair(rate_num=1, rate_den=1, min_amount=1, fee_bps=9_999), 1)
    assert quote(pair(rate_num=1, rate_den=1_000, min_amount=1, fee_bps=0), 1_000).lock_amount == 1


def test_pairs_are_found_by_name_and_an_unknown_name_is_refused():
    swaps = SwapsSection(
        keystore=Path("swap.json"), chains=SWAP_CHAINS,
        pairs=[pair(), pair(name="ETH/BTC", user_chain=ETH, user_asset=ZERO,
                            relayer_chain=BTC, relayer_asset="btc")])
    assert swaps.pair("ETH/BTC").user_chain == ETH
    with pytest.raises(ValidationError, match="unknown swap pair 'BTC/DOGE'"):
        swaps.pair("BTC/DOGE")
    assert SwapsSection().pairs == []


def test_evm_assets_are_lowercased():
    assert pair(relayer_asset="0x" + "AB" * 20).relayer_asset == "0x" + "ab" * 20


@pytest.mark.parametrize("overrides,message", [
    ({"rate_den": 0}, "rate_den"),
    ({"rate_num": 0}, "rate_num"),
    ({"fee_bps": 10_000}, "fee_bps"),
    ({"min_amount": 0}, "min_amount"),
    ({"min_amount": 6, "max_amount": 5}, "min_amount 6 is above max_amount 5"),
    ({"relayer_timelock_s": 86_400}, ("user_timelock_s (86400) must be longer than "
     "relayer_timelock_s (86400)")),
    ({"lock_deadline_s": 43_200}, ("lock_deadline_s (43200) must be shorter than "
     "relayer_timelock_s (43200)")),
    ({"relayer_asset": "weth"}, "relayer_asset must be lowercase 0x + 40 hex chars"),
    ({"user_chain": "bitcoin"}, "user_chain must be a CAIP-2 chain id"),
    ({"relayer_chain": BTC, "relayer_asset": "btc"}, "the user and relayer assets are the same"),
    ({"name": "BTC-ETH"}, "name"),
    ({"rate": 5}, "Extra inputs are not permitted"),
    ({"max_amount": 2**256, "min_amount": 1}, "max_amount"),
    ({"max_amount": 2**200, "rate_num": 2**60}, "exceeds 2**256-1"),
])
def test_bad_pairs_are_refused(overrides, message):
    with pytest.raises(PydanticValidationError, match=re.escape(message)):
        pair(**overrides)


# ------------------------------------------------------------------ config
CHAINS = """
[[chains]]
name = "ethereum"
chain_id = 1
rpc_url = "http://127.0.0.1:8545"
bridge_address = "0x0000000000000000000000000000000000000001"
"""
SWAPS = """
[swaps]
keystore = "swap.json"
[[swaps.chains]]
chain = "ferry:ledger"
[[swaps.chains]]
chain = "eip155:1"
htlc_address = "0x00000000000000000000000000000000000000c1"
"""
PAIR = """
[[swaps.pairs]]
name = "WBTC/ETH"
user_chain = "ferry:ledger"
user_asset = "wbtc"
relayer_chain = "eip155:1"
relayer_asset = "0x0000000000000000000000000000000000000000"
rate_num = 200000000000
rate_den = 1
fee_bps = 30
min_amount = 100000
max_amount = 100000000
user_timelock_s = 86400
relayer_timelock_s = 43200
lock_deadline_s = 3600
"""


def test_a_swaps_section_loads_from_toml(tmp_path):
    path = tmp_path / "ferry.toml"
    path.write_text(CHAINS + SWAPS + PAIR)
    cfg = load_config(path)
    p = cfg.swaps.pair("WBTC/ETH")
    assert (p.enabled, p.rate_num, p.user_chain) == (True, 200_000_000_000, "ferry:ledger")
    assert quote(p, 150_000).lock_amount == 29_910_000_000_000_000


@pytest.mark.parametrize("toml,message", [
    (CHAINS + SWAPS + PAIR.replace("rate_den = 1", "rate_den = 0"),
     "swaps.pairs.0.rate_den: Input should be greater than 0"),
    (CHAINS + SWAPS + PAIR.replace("min_amount = 100000", "min_amount = 200000000"),
     ("swaps.pairs.0: Value error, pair WBTC/ETH: min_amount 200000000 is above max_amount "
     "100000000")),
    (CHAINS + SWAPS + PAIR.replace("user_timelock_s = 86400", "user_timelock_s = 43200"),
     "pair WBTC/ETH: user_timelock_s (43200) must be longer than relayer_timelock_s (43200)"),
    (CHAINS + SWAPS + PAIR.replace("lock_deadline_s = 3600", "lock_deadline_s = 50000"),
     "pair WBTC/ETH: lock_deadline_s (50000) must be shorter than relayer_timelock_s (43200)"),
    (CHAINS + SWAPS + PAIR.replace("fee_bps = 30", "fee_bsp = 30"),
     "swaps.pairs.0.fee_bps: Field required"),
    (CHAINS + SWAPS + PAIR.replace("fee_bps = 30", "fee_bps = 30\nfee = 1"),
     "swaps.pairs.0.fee: Extra inputs are not permitted"),
    (CHAINS + SWAPS + PAIR.replace("rate_num = 200000000000", "rate_num = 2.5"),
     "swaps.pairs.0.rate_num: Input should be a valid integer"),
    (CHAINS + SWAPS + PAIR + PAIR, "swap pair names must be unique: WBTC/ETH"),
    (SWAPS + PAIR, "swap pair WBTC/ETH: relayer_chain eip155:1 is not configured"),
    ("[swaps]\npair = 1\n", "swaps.pair: Extra inputs are not permitted"),
])
def test_bad_swaps_config_is_one_clear_line(tmp_path, toml, message):
    path = tmp_path / "ferry.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_config(path)
    assert "\n" not in str(err.value)


SWAP_CHAINS = [SwapChain(chain=BTC), SwapChain(chain=ETH, htlc_address="0x" + "c1" * 20)]


def test_swaps_section_needs_a_chain_entry_per_pair_chain_and_a_keystore():
    with pytest.raises(PydanticValidationError, match="no \\[\\[swaps.chains\\]\\] entry for eip155:1"):
        SwapsSection(keystore=Path("k.json"), chains=SWAP_CHAINS[:1], pairs=[pair()])
    with pytest.raises(PydanticValidationError, match="swaps.keystore is required"):
        SwapsSection(chains=SWAP_CHAINS, pairs=[pair()])
    assert SwapsSection(keystore=Path("k.json"), chains=SWAP_CHAINS, pairs=[pair()]).chain(ETH) \
        .htlc_address == "0x" + "c1" * 20


def test_swap_chain_checks_the_htlc_address_by_chain_family():
    with pytest.raises(PydanticValidationError, match="htlc_address is required on EVM chains"):
        SwapChain(chain=ETH)
    with pytest.raises(PydanticValidationError, match="htlc_address is for EVM chains only"):
        SwapChain(chain=BTC, htlc_address="0x" + "c1" * 20)
    with pytest.raises(PydanticValidationError, match="htlc_address"):
        SwapChain(chain=ETH, htlc_address="0x1234")
