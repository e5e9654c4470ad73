"""Chain-neutral fork finding (`adapters.reorg`) over a fake chain: hashes per height only."""

from __future__ import annotations

import hashlib

import pytest

from adapters.base import BlockRef
from adapters.errors import ReorgDetected
from adapters.reorg import fork_point

CHAIN = "eip155:31337"


class FakeChain:
    """Just enough of `ChainAdapter` for fork finding: a canonical hash per height."""

    chain = CHAIN
    confirmation_depth = 0

    def __init__(self, height: int, salt: str = "a") -> None:
        self.hashes = {n: self._hash(n, salt) for n in range(height + 1)}

    @staticmethod
    def _hash(number: int, salt: str) -> str:
        return "0x" + hashlib.sha256(f"{salt}{number}".encode()).hexdigest()

    def reorg(self, depth: int, salt: str = "b") -> None:
        """Replace the top `depth` blocks."""
        top = max(self.hashes)
        for n in range(top - depth + 1, top + 1):
            self.hashes[n] = self._hash(n, salt)

    def block_hash(self, number: int) -> str | None:
        return self.hashes.get(number)

    def ref(self, number: int) -> BlockRef:
        return BlockRef(number, self.hashes[number])


# ----------------------------------------------------------------------------- fork_point


def test_fork_point_is_none_without_a_reorg_or_without_memory() -> None:
    chain = FakeChain(10)
    assert fork_point(chain, [chain.ref(n) for n in (4, 7, 10)]) is None  # type: ignore[arg-type]
    assert fork_point(chain, []) is None  # type: ignore[arg-type]


def test_fork_point_is_the_newest_remembered_block_still_canonical_in_any_order() -> None:
    chain = FakeChain(20)
    trail = [chain.ref(n) for n in (12, 5, 20, 15, 17)]  # sparse, unordered
    chain.reorg(depth=4)  # 17..20 replaced; 15 is the newest remembered survivor
    assert fork_point(chain, trail) == chain.ref(15)  # type: ignore[arg-type]


def test_fork_point_compares_hashes_case_insensitively() -> None:
    chain = FakeChain(10)
    trail = [BlockRef(n, chain.ref(n).hash.upper().replace("0X", "0x")) for n in (8, 10)]
    assert fork_point(chain, trail) is None  # type: ignore[arg-type]
    chain.reorg(depth=1)
    assert fork_point(chain, trail) == trail[0]  # type: ignore[arg-type]


def test_reorg_deeper_than_the_whole_remembered_trail_raises_instead_of_guessing() -> None:
    chain = FakeChain(30)
    trail = [chain.ref(n) for n in (21, 24, 27, 30)]
    chain.reorg(depth=12)  # 19..30 replaced: below the oldest remembered block (21)
    with pytest.raises(ReorgDetected) as info:
        fork_point(chain, trail)  # type: ignore[arg-type]
    assert (info.value.chain, info.value.height) == (CHAIN, 21)
