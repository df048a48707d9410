"""The Merkle tree of RFC 6962 / RFC 9162 (section 2.1) over the ledger's global event log.

Hashing: leaf = SHA-256(0x00 || leaf bytes), node = SHA-256(0x01 || left || right); the tree
of n leaves splits at the largest power of two below n; the empty tree hashes to SHA-256("").
Proofs are the RFC's audit paths (PATH) and consistency proofs (PROOF), checked with its
verification algorithms (2.1.3.2, 2.1.4.2), so any RFC 9162 implementation can check what
jitaccess exports. Pure: hashes in, hashes out (32-byte `bytes`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The right border of an append-only tree: the roots of its perfect subtrees, largest
    first (one per set bit of the size). Appending is a binary-counter carry; the root folds the
    border from the right. So a checkpointer needs O(log n) state, not every leaf."""

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if bin(size).count("1") != len(hashes):
            raise ValueError(f"a frontier of size {size} has {bin(size).count('1')} hashes, not {len(hashes)}")
        self.size = size
        self.hashes = list(hashes)

    def append(self, leaf: bytes) -> None:
        self.hashes.append(leaf)
        self.size += 1
        for _ in range((self.size & -self.size).bit_length() - 1):  # one merge per trailing zero bit
            right, left = self.hashes.pop(), self.hashes.pop()
            self.hashes.append(node_hash(left, right))

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        h = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            h = node_hash(left, h)
        return h


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of leaf hashes."""
    f = Frontier()
    for leaf in leaves:
        f.append(leaf)
    return f.root()


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """PATH(index, D[size]): the audit path of leaf `index` in the tree of the first `size` leaves."""
    size = len(leaves) if size is None else size
    if not 0 <= index < size <= len(leaves):
        raise ValueError(f"leaf {index} is outside a tree of size {size}")
    return _path(leaves, index, 0, size)


def _path(leaves: Sequence[bytes], m: int, lo: int, hi: int) -> list[bytes]:
    n = hi - lo
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(leaves, m, lo, lo + k), root(leaves[lo + k : hi])]
    return [*_path(leaves, m - k, lo + k, hi), root(leaves[lo : lo + k])]


def consistency_proof(leaves: Sequence[bytes], first: int, second: int | None = None) -> list[bytes]:
    """PROOF(first, D[second]): proves the tree of `first` leaves is a prefix of that of `second`."""
    second = len(leaves) if second is None else second
    if not 0 < first <= second <= len(leaves):
        raise ValueError(f"no consistency proof from size {first} to {second} (log of {len(leaves)})")
    return _subproof(leaves, first, 0, second, True)


def _subproof(leaves: Sequence[bytes], m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
    n = hi - lo
    if m == n:
        return [] if complete else [root(leaves[lo:hi])]
    k = _split(n)
    if m <= k:
        return [*_subproof(leaves, m, lo, lo + k, complete), root(leaves[lo + k : hi])]
    return [*_subproof(leaves, m - k, lo + k, hi, False), root(leaves[lo : lo + k])]


def _climb(fn: int, sn: int, proof: Sequence[bytes]) -> tuple[list[tuple[bytes, bool]], int] | None:
    """The walk both RFC 9162 verifications share, from node `fn` of a tree whose last node is
    `sn`: each proof hash with whether it is a left sibling (hash(p, r)) or a right one
    (hash(r, p)), and the final `sn` (0 when the walk reached the root); None when the proof is
    longer than the path."""
    steps: list[tuple[bytes, bool]] = []
    for p in proof:
        if sn == 0:
            return None
        left = bool(fn & 1 or fn == sn)
        steps.append((p, left))
        if left:
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        fn >>= 1
        sn >>= 1
    return steps, sn


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does `proof` place `leaf` at `index` in the tree of `size` with this root?"""
    if not 0 <= index < size or any(len(p) != 32 for p in proof):
        return False
    climbed = _climb(index, size - 1, proof)
    if climbed is None:
        return False
    steps, sn = climbed
    r = leaf
    for p, left in steps:
        r = node_hash(p, r) if left else node_hash(r, p)
    return sn == 0 and r == expected_root


def verify_consistency(first: int, first_root: bytes, second: int, second_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: is the tree (first, first_root) a prefix of (second, second_root)?"""
    if first < 0 or first > second or any(len(p) != 32 for p in proof):
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof and first_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two: the first tree is a node of the second
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    climbed = _climb(fn, sn, path[1:])
    if climbed is None:
        return False
    steps, sn = climbed
    fr = sr = path[0]
    for c, left in steps:
        if left:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
        else:
            sr = node_hash(sr, c)
    return fr == first_root and sr == second_root and sn == 0
