"""The journal's Merkle tree: RFC 6962 (Certificate Transparency) section 2.1, as restated in
RFC 9162 section 2.1, with SHA-256.

Owns: the hashing rules (`leaf_hash`, `node_hash`, `EMPTY_ROOT`), the pure proof check clients
run (`verify_inclusion`, `root_from_inclusion_path`), and `MerkleTree`, an in-memory tree that
the ledger appends journal entries to. Must not touch a database (`ledger.history` feeds the
tree from the journal table) nor know what a leaf means.

Format (RFC 6962 section 2.1):
- ``MTH({}) = SHA-256()``; ``leaf_hash(d) = SHA-256(0x00 || d)``;
  ``node_hash(l, r) = SHA-256(0x01 || l || r)``; a tree of ``n > 1`` leaves splits at ``k``, the
  largest power of two smaller than ``n``: ``MTH(D[n]) = node_hash(MTH(D[0:k]), MTH(D[k:n]))``.
- An inclusion proof (audit path, section 2.1.1) of leaf ``m`` in a tree of ``n`` leaves is the
  list of sibling subtree hashes from the leaf up to the root (the leaf itself excluded).

The storage and the proof generation are the `pymerkle` library's (``InmemoryTree``: the same
tree shape and prefixes; it reads complete-subtree hashes off its nodes, so an append costs
O(log n) hashes and a proof for any past tree size O(log n) node walks). The verification here is
independent of it (RFC 9162 section 2.1.3.2), so a client needs only this module and hashlib.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence

from pymerkle import InmemoryTree

from adapters.errors import ValidationError

HASH_BYTES = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}), RFC 6962 section 2.1


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one leaf (32 bytes)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node (32 bytes)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def root_from_inclusion_path(
    leaf: bytes, index: int, tree_size: int, path: Sequence[bytes]
) -> bytes | None:
    """The root an audit path leads to (RFC 9162 section 2.1.3.2, steps 1-5 without the final
    comparison).

    Args:
        leaf: the leaf data (not yet hashed; for the journal, an entry's 32-byte hash).
        index: 0-based leaf index (journal entry seq - 1).
        tree_size: number of leaves of the tree the path is for.
        path: sibling hashes, 32 bytes each, leaf level first.

    Returns:
        The 32-byte root, or None if the path cannot belong to (`index`, `tree_size`) (index out
        of range, a path too long or too short, an element not 32 bytes).
    """
    if not 0 <= index < tree_size:
        return None
    fn, sn = index, tree_size - 1
    r = leaf_hash(leaf)
    for p in path:
        if sn == 0 or len(p) != HASH_BYTES:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """Whether `path` proves leaf `index` holds `leaf` in the tree of `tree_size` leaves whose
    root is `root` (RFC 9162 section 2.1.3.2).

    Args:
        leaf: the leaf data (for the journal: the entry's 32-byte hash, ``sha256(prev_hash ||
            payload)``; its leaf hash is ``SHA-256(0x00 || leaf)``).
        index: 0-based leaf index (journal entry seq - 1).
        tree_size: number of leaves (the journal seq the root was taken at).
        path: the audit path, 32-byte hashes, leaf level first.
        root: the 32-byte tree root to check against (from a source you trust).

    Returns:
        True if the proof holds; False otherwise (never raises on malformed input).
    """
    return root_from_inclusion_path(leaf, index, tree_size, path) == root


class MerkleTree:
    """An append-only in-memory RFC 6962 tree. Thread-safe.

    Leaves are data blobs hashed with `leaf_hash` on append (0-based indices). Memory: one
    node object per leaf and per interior node (about 360 bytes per leaf: 36 MB, and about 1 s
    to build, for 100,000 leaves).
    """

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._tree = InmemoryTree(algorithm="sha256")  # 0x00/0x01 prefixes (security on)
        self._lock = threading.RLock()
        self.extend(leaves)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return int(self._tree.get_size())

    def append(self, leaf: bytes) -> int:
        """Append one leaf; returns its 0-based index."""
        with self._lock:
            return int(self._tree.append_entry(bytes(leaf))) - 1

    def extend(self, leaves: Iterable[bytes]) -> int:
        """Append leaves in order; returns the new size."""
        with self._lock:
            for leaf in leaves:
                self._tree.append_entry(bytes(leaf))
            return self.size

    def root(self, tree_size: int | None = None) -> bytes:
        """``MTH`` of the first `tree_size` leaves (default: all).

        Raises:
            ValidationError: `tree_size` is negative or above the size.
        """
        with self._lock:
            size = self.size if tree_size is None else tree_size
            if not 0 <= size <= self.size:
                raise ValidationError(f"tree_size {size} is not in 0..{self.size}")
            return EMPTY_ROOT if size == 0 else bytes(self._tree.get_root(size))

    def inclusion_path(self, index: int, tree_size: int | None = None) -> list[bytes]:
        """The audit path of 0-based leaf `index` in the tree of its first `tree_size` leaves
        (default: all), leaf level first (RFC 6962 section 2.1.1).

        Raises:
            ValidationError: not ``0 <= index < tree_size <= size``.
        """
        with self._lock:
            size = self.size if tree_size is None else tree_size
            if not 0 <= index < size <= self.size:
                raise ValidationError(
                    f"need 0 <= index < tree_size <= {self.size}, got index {index}, "
                    f"tree_size {size}")
            proof = self._tree.prove_inclusion(index + 1, size)
            # pymerkle's path starts with the leaf's own hash; the RFC audit path does not.
            return [bytes.fromhex(h) if isinstance(h, str) else bytes(h) for h in proof.path[1:]]
