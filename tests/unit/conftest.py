"""Shared unit-test fixtures: a ledger on a fresh SQLite file, and a user account."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from nacl.signing import SigningKey

from ledger.testing import Harness, open_harness


@pytest.fixture()
def h(tmp_path) -> Iterator[Harness]:
    """A ledger (SQLite in `tmp_path`) with a 3-of-5 genesis set and registered assets."""
    harness = open_harness(f"sqlite:///{tmp_path}/ledger.sqlite")
    yield harness
    harness.ledger.close()


@pytest.fixture()
def alice() -> bytes:
    """A fresh ledger account (32-byte Ed25519 public key)."""
    return bytes(SigningKey.generate().verify_key)
