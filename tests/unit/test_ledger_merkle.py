"""The journal's Merkle tree (`ledger.merkle`): RFC 6962 roots and audit paths, checked against
the Certificate Transparency test vectors and a naive recursive transcription of RFC 6962
section 2.1 for every size 1..70; every proof verifies and every tampered one fails."""

from __future__ import annotations

import hashlib
import random
import time

import pytest

from adapters.errors import ValidationError
from ledger.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_inclusion_path,
    verify_inclusion,
)

# certificate-transparency testonly/constants.go: leaf inputs, the roots of their first n.
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]
# (0-based leaf index, tree size, audit path) from the same test suite.
CT_PATHS = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]), RFC 6962 section 2.1, transcribed literally."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _split(len(leaves))
    return hashlib.sha256(b"\x01" + naive_root(leaves[:k]) + naive_root(leaves[k:])).digest()


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]), RFC 6962 section 2.1.1, transcribed literally."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return naive_path(m, leaves[:k]) + [naive_root(leaves[k:])]
    return naive_path(m - k, leaves[k:]) + [naive_root(leaves[:k])]


def _leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(f"entry {i}".encode()).digest() for i in range(n)]


def test_roots_match_the_certificate_transparency_vectors():
    tree = MerkleTree()
    assert tree.root() == EMPTY_ROOT == CT_ROOTS[0]
    for n, leaf in enumerate(CT_LEAVES, 1):
        tree.append(leaf)
        assert tree.root() == CT_ROOTS[n]
    for n in range(9):  # and every past size of the grown tree
        assert tree.root(n) == CT_ROOTS[n] == naive_root(CT_LEAVES[:n])


@pytest.mark.parametrize(("index", "size", "path"), CT_PATHS)
def test_audit_paths_match_the_certificate_transparency_vectors(index, size, path):
    tree = MerkleTree(CT_LEAVES)
    expected = [bytes.fromhex(p) for p in path]
    assert tree.inclusion_path(index, size) == expected
    assert verify_inclusion(CT_LEAVES[index], index, size, expected, CT_ROOTS[size])
    assert not verify_inclusion(CT_LEAVES[index], index, size, expected, CT_ROOTS[size - 1])


def test_hash_prefixes_are_rfc6962():
    assert leaf_hash(b"") == CT_ROOTS[1]
    assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")) == CT_ROOTS[2]


def test_every_root_and_path_matches_the_naive_rfc_for_sizes_1_to_70():
    leaves = _leaves(70)
    tree = MerkleTree()
    for n in range(1, 71):
        tree.append(leaves[n - 1])
        assert tree.root() == naive_root(leaves[:n])
    for size in range(1, 71):  # proofs against past sizes of the full tree
        root = naive_root(leaves[:size])
        assert tree.root(size) == root
        for index in range(size):
            path = tree.inclusion_path(index, size)
            assert path == naive_path(index, leaves[:size]), (index, size)
            assert verify_inclusion(leaves[index], index, size, path, root)


def test_tampered_proofs_fail():
    leaves = _leaves(37)
    tree = MerkleTree(leaves)
    root = tree.root()
    for index in (0, 1, 17, 31, 32, 36):
        path = tree.inclusion_path(index)
        assert verify_inclusion(leaves[index], index, 37, path, root)
        for i in range(len(path)):  # any flipped bit in any path element
            bad = list(path)
            bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
            assert not verify_inclusion(leaves[index], index, 37, bad, root)
        assert not verify_inclusion(leaves[(index + 1) % 37], index, 37, path, root)  # leaf
        assert not verify_inclusion(leaves[index], (index + 1) % 37, 37, path, root)  # index
        # the size only fixes the path's shape (the root binds the content): a size whose
        # shape differs fails, and so does the root of another size
        assert not verify_inclusion(leaves[index], index, 1000, path, root)
        assert not verify_inclusion(leaves[index], index, 37, path, tree.root(36))
        assert not verify_inclusion(leaves[index], index, 37, path[:-1], root)  # short
        assert not verify_inclusion(leaves[index], index, 37, path + [root], root)  # long
        assert not verify_inclusion(leaves[index], index, 37, path, leaf_hash(root))  # root
        assert not verify_inclusion(leaves[index], index, 37, [p[:31] for p in path], root)


def test_malformed_challenges_are_refused():
    tree = MerkleTree(_leaves(5))
    for index, size in ((-1, 5), (5, 5), (0, 0), (0, 6)):
        with pytest.raises(ValidationError):
            tree.inclusion_path(index, size)
        assert root_from_inclusion_path(b"x", index, size, []) is None
    with pytest.raises(ValidationError):
        tree.root(6)
    assert not verify_inclusion(b"x", 3, 3, [], EMPTY_ROOT)


def test_proofs_at_100k_leaves_take_well_under_5_ms():
    leaves = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(100_000)]
    tree = MerkleTree(leaves)
    rng = random.Random(6962)
    samples = []
    for _ in range(200):
        size = rng.randint(1, 100_000) if rng.random() < 0.5 else 100_000
        index = rng.randrange(size)
        started = time.perf_counter()
        path = tree.inclusion_path(index, size)
        root = tree.root(size)
        samples.append(time.perf_counter() - started)
        assert verify_inclusion(leaves[index], index, size, path, root)
    samples.sort()
    assert samples[len(samples) // 2] < 0.005, f"median {samples[100] * 1e3:.2f} ms"
    assert sum(samples) / len(samples) < 0.005
