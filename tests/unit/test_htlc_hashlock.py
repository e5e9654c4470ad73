"""Hashlocks: 32-byte secrets, SHA-256 hashlocks, preimage checks and hex parsing."""

from __future__ import annotations

import hashlib

import pytest

from adapters.errors import HtlcError, ValidationError
from htlc.errors import BadPreimage
from htlc.hashlock import (
    check_preimage,
    hashlock_of,
    new_secret,
    parse_hashlock,
    parse_secret,
    to_hex,
)

SECRET = bytes(range(32))
HASHLOCK = hashlib.sha256(SECRET).digest()


def test_new_secrets_are_32_fresh_bytes() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert {len(s) for s in secrets} == {32}


def test_hashlock_is_the_sha256_of_the_secret() -> None:
    assert hashlock_of(SECRET) == HASHLOCK
    # FIPS 180-4 vector for 32 zero bytes.
    assert hashlock_of(bytes(32)).hex() == (
        "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925")


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33), bytes(64), "00" * 32, None])
def test_hashlock_of_refuses_anything_but_32_bytes(bad) -> None:
    with pytest.raises(BadPreimage):
        hashlock_of(bad)


def test_the_right_preimage_passes() -> None:
    check_preimage(SECRET, HASHLOCK)


def test_a_wrong_preimage_fails() -> None:
    with pytest.raises(BadPreimage, match="not the hashlock"):
        check_preimage(bytes(32), HASHLOCK)


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_a_preimage_of_another_length_fails_even_when_its_hash_matches(length: int) -> None:
    odd = bytes(range(length))
    with pytest.raises(BadPreimage, match="exactly 32 bytes"):
        check_preimage(odd, hashlib.sha256(odd).digest())


@pytest.mark.parametrize("bad_lock", [HASHLOCK[:31], HASHLOCK + b"\x00", b""])
def test_a_malformed_hashlock_is_a_validation_error(bad_lock: bytes) -> None:
    with pytest.raises(ValidationError):
        check_preimage(SECRET, bad_lock)


def test_bad_preimage_is_an_htlc_error() -> None:
    assert issubclass(BadPreimage, HtlcError)
    assert BadPreimage.code == "bad_preimage"


def test_hex_round_trips_in_either_case() -> None:
    assert parse_secret(to_hex(SECRET)) == SECRET
    assert parse_hashlock(to_hex(HASHLOCK)) == HASHLOCK
    assert parse_hashlock("0X" + HASHLOCK.hex().upper()) == HASHLOCK
    assert to_hex(HASHLOCK) == "0x" + HASHLOCK.hex()


@pytest.mark.parametrize("text", [
    SECRET.hex(),  # no 0x
    "0x" + SECRET.hex()[:-2],  # 31 bytes
    "0x" + SECRET.hex() + "00",  # 33 bytes
    "0x" + "zz" * 32,  # not hex
    "0x" + " " * 64,
    "",
])
def test_malformed_hex_is_refused(text: str) -> None:
    with pytest.raises(BadPreimage):
        parse_secret(text)
    with pytest.raises(ValidationError):
        parse_hashlock(text)
