"""The Cosmos escrow: LegacyAminoPubKey, its Amino bytes and address, account addresses, bech32.

Vectors were produced with simd v0.50.3 (Cosmos SDK simapp) in a throwaway home:
    simd keys import-hex k{0,1,2} <SECRETS[i].hex()> --keyring-backend test
    simd keys add ms  --multisig k0,k1,k2 --multisig-threshold 2 --nosort --keyring-backend test
    simd keys add ms3 --multisig k0,k1,k2 --multisig-threshold 3 --nosort --keyring-backend test
    simd keys show {k0,k1,k2,ms,ms3} -a --keyring-backend test
(`--nosort` keeps our bytewise key order; simd would otherwise sort by address.)
"""

from __future__ import annotations

import hashlib
import random

import bech32
import pytest
from coincurve import PrivateKey
from cosmpy.protos.cosmos.crypto.secp256k1.keys_pb2 import PubKey

from adapters.cosmos import multisig
from adapters.cosmos.multisig import (
    account_address,
    amino_bytes,
    canonical_address,
    escrow_address,
    escrow_pubkey,
    parse_address,
)
from adapters.errors import ConfigError, InvalidAddress

SECRETS = [hashlib.sha256(f"ferry cosmos vector key {i}".encode()).digest() for i in (1, 2, 3)]
# The same keys sorted ascending bytewise (the escrow's key order).
PUBKEYS = sorted(PrivateKey(s).public_key.format() for s in SECRETS)
ESCROW_2_OF_3 = "cosmos1rn8sq3wz9k9zjlgujeaj77ajnkx0wqhknnyd8s"
ESCROW_3_OF_3 = "cosmos1p3yxqxq3884tpzrqlmkcyaxar2jdxcghql5660"
ACCOUNTS = [  # simd keys show k0 / k1 / k2 -a
    "cosmos1rmleka8hdqyquklarfyu5zpwe8ssl8j2z0e22a",
    "cosmos1cfr80qzls3h4jlr0t6u3v9f59gvp2z0d08vdld",
    "cosmos1ya274fhsxatyqw7ne78te99k2edche8reaxwuf",
]


def test_vector_keys_are_the_simd_keys() -> None:
    assert [k.hex() for k in PUBKEYS] == [
        "0287c832a1fe1051730a3999f2a41d5714445abd207b8063bd879465fdc42f7135",
        "0314ed4f01d1e14090c75a2cd9586ad55d93d777b624a9c84dd1c5c70b1e817f40",
        "0370266148b9f340381b07c75418cc4088a0c88acd6597ff7caac0774b8d212d05",
    ]


@pytest.mark.parametrize(("threshold", "address"), [(2, ESCROW_2_OF_3), (3, ESCROW_3_OF_3)])
def test_escrow_address_matches_simd_in_any_input_order(threshold: int, address: str) -> None:
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        assert escrow_address([PUBKEYS[i] for i in order], threshold) == address


def test_escrow_address_differs_with_threshold_and_prefix() -> None:
    assert escrow_address(PUBKEYS, 1) not in (ESCROW_2_OF_3, ESCROW_3_OF_3)
    osmo = escrow_address(PUBKEYS, 2, prefix="osmo")
    assert osmo.startswith("osmo1")
    assert parse_address(osmo, "osmo") == parse_address(ESCROW_2_OF_3)


def test_escrow_pubkey_holds_sorted_secp256k1_anys() -> None:
    legacy = escrow_pubkey(reversed(PUBKEYS), 2)
    assert legacy.threshold == 2
    assert [a.type_url for a in legacy.public_keys] == ["/cosmos.crypto.secp256k1.PubKey"] * 3
    inner = [PubKey.FromString(a.value).key for a in legacy.public_keys]
    assert inner == PUBKEYS
    assert multisig.member_keys(legacy) == tuple(PUBKEYS)


def test_amino_bytes_layout() -> None:
    data = amino_bytes(escrow_pubkey(PUBKEYS, 2))
    member = b"\x12\x26" + bytes.fromhex("eb5ae987") + b"\x21"
    assert data == bytes.fromhex("22c1f7e2") + b"\x08\x02" + b"".join(member + k for k in PUBKEYS)
    digest = hashlib.sha256(data).digest()[:20]
    assert parse_address(ESCROW_2_OF_3) == digest


def test_amino_bytes_refuses_a_foreign_member_type() -> None:
    legacy = escrow_pubkey(PUBKEYS, 2)
    legacy.public_keys[0].type_url = "/cosmos.crypto.ed25519.PubKey"
    with pytest.raises(ConfigError):
        amino_bytes(legacy)


NOT_ON_CURVE = b"\x02" + b"\xff" * 32
UNCOMPRESSED = PrivateKey(SECRETS[0]).public_key.format(compressed=False)


@pytest.mark.parametrize(
    ("keys", "threshold"),
    [
        pytest.param([PUBKEYS[0], PUBKEYS[0], PUBKEYS[1]], 2, id="duplicate-key"),
        pytest.param([PUBKEYS[0], PUBKEYS[1][:32]], 1, id="short-key"),
        pytest.param([PUBKEYS[0], UNCOMPRESSED], 1, id="uncompressed-key"),
        pytest.param([PUBKEYS[0], NOT_ON_CURVE], 1, id="not-on-curve"),
        pytest.param([], 1, id="no-keys"),
        pytest.param(PUBKEYS, 0, id="threshold-zero"),
        pytest.param(PUBKEYS, 4, id="threshold-above-n"),
        pytest.param(PUBKEYS, True, id="threshold-bool"),
        pytest.param([PrivateKey().public_key.format() for _ in range(8)], 5, id="n-above-7"),
    ],
)
def test_escrow_pubkey_refuses_bad_configuration(keys: list[bytes], threshold: int) -> None:
    with pytest.raises(ConfigError):
        escrow_pubkey(keys, threshold)
    with pytest.raises(ConfigError):
        escrow_address(keys, threshold)


def test_escrow_allows_more_keys_when_the_chain_raises_tx_sig_limit() -> None:
    keys = [PrivateKey().public_key.format() for _ in range(10)]
    assert len(escrow_pubkey(keys, 6, tx_sig_limit=16).public_keys) == 10


@pytest.mark.parametrize(("index", "address"), list(enumerate(ACCOUNTS)))
def test_account_address_matches_simd(index: int, address: str) -> None:
    assert account_address(PUBKEYS[index]) == address
    assert parse_address(address) == hashlib.new(
        "ripemd160", hashlib.sha256(PUBKEYS[index]).digest()).digest()


def test_account_address_refuses_a_bad_key() -> None:
    with pytest.raises(ConfigError):
        account_address(NOT_ON_CURVE)


def _bech32(prefix: str, data: bytes, constant: int = 1) -> str:
    """BIP-173 bech32 (constant 1), or BIP-350 bech32m with constant 0x2BC830A3."""
    words = bech32.convertbits(list(data), 8, 5)
    assert words is not None
    poly = bech32.bech32_polymod(bech32.bech32_hrp_expand(prefix) + words + [0] * 6) ^ constant
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    return prefix + "1" + "".join(bech32.CHARSET[d] for d in words + checksum)


ADDR = ACCOUNTS[0]


@pytest.mark.parametrize(
    ("text", "prefix", "length"),
    [
        pytest.param(ADDR, "cosmos", 20, id="account"),
        pytest.param(ADDR.upper(), "cosmos", 20, id="uppercase"),
        pytest.param(_bech32("cosmos", b"\x11" * 32), "cosmos", 32, id="32-byte-module"),
        pytest.param(_bech32("osmo", b"\x11" * 20), "osmo", 20, id="other-prefix"),
    ],
)
def test_parse_address_accepts(text: str, prefix: str, length: int) -> None:
    assert len(parse_address(text, prefix)) == length
    assert canonical_address(text, prefix) == text.lower()


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        pytest.param(ADDR[:-1] + ("q" if ADDR[-1] != "q" else "p"), "cosmos", id="bad-checksum"),
        pytest.param(ADDR, "osmo", id="wrong-prefix"),
        pytest.param(ADDR[:10] + ADDR[10:].upper(), "cosmos", id="mixed-case"),
        pytest.param(_bech32("cosmos", b"\x11" * 19), "cosmos", id="19-bytes"),
        pytest.param(_bech32("cosmos", b"\x11" * 33), "cosmos", id="33-bytes"),
        pytest.param(_bech32("cosmos", b"\x11" * 20, 0x2BC830A3), "cosmos", id="bech32m"),
        pytest.param("cosmos1", "cosmos", id="empty"),
        pytest.param("", "cosmos", id="blank"),
        pytest.param(ADDR + "q" * 60, "cosmos", id="too-long"),
        pytest.param(b"cosmos1", "cosmos", id="bytes-not-str"),
    ],
)
def test_parse_address_refuses(text: str, prefix: str) -> None:
    with pytest.raises(InvalidAddress):
        parse_address(text, prefix)


def test_random_escrows_round_trip_through_parse() -> None:
    rng = random.Random(7)
    for n in range(1, 8):
        keys = [PrivateKey(rng.randbytes(32)).public_key.format() for _ in range(n)]
        address = escrow_address(keys, rng.randint(1, n))
        assert canonical_address(address) == address
