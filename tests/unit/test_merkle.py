"""The RFC 6962 / 9162 Merkle tree against the Certificate Transparency reference vectors (the
eight-leaf test set every CT implementation agrees on), plus every proof up to 40 leaves."""

from __future__ import annotations

import hashlib

import pytest

from jitaccess.domain.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

CT_LEAVES = [bytes.fromhex(h) for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657"]] + [
    bytes(range(0x60, 0x70))
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
HASHES = [leaf_hash(d) for d in CT_LEAVES]


def test_hashing_is_domain_separated():
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()


@pytest.mark.parametrize("n", range(9))
def test_roots_match_the_reference_vectors(n):
    assert root(HASHES[:n]).hex() == CT_ROOTS[n]


@pytest.mark.parametrize(("index", "size", "expected"), CT_INCLUSION)
def test_inclusion_proofs_match_the_reference_vectors(index, size, expected):
    proof = inclusion_proof(HASHES, index, size)
    assert [p.hex() for p in proof] == expected
    assert verify_inclusion(HASHES[index], index, size, proof, bytes.fromhex(CT_ROOTS[size]))


@pytest.mark.parametrize(("first", "second", "expected"), CT_CONSISTENCY)
def test_consistency_proofs_match_the_reference_vectors(first, second, expected):
    proof = consistency_proof(HASHES, first, second)
    assert [p.hex() for p in proof] == expected
    r1, r2 = bytes.fromhex(CT_ROOTS[first]), bytes.fromhex(CT_ROOTS[second])
    assert verify_consistency(first, r1, second, r2, proof)


def test_every_proof_up_to_40_leaves_verifies_and_a_wrong_one_does_not():
    leaves = [leaf_hash(f"leaf-{i}".encode()) for i in range(40)]
    for n in range(1, 41):
        r = root(leaves[:n])
        for m in range(n):
            p = inclusion_proof(leaves, m, n)
            assert verify_inclusion(leaves[m], m, n, p, r)
            assert not verify_inclusion(leaf_hash(b"other"), m, n, p, r)
            assert not verify_inclusion(leaves[m], m, n, [*p, r], r)  # longer than the path to the root
            if n > 1:
                assert not verify_inclusion(leaves[m], (m + 1) % n, n, p, r)
        for m in range(1, n + 1):
            p = consistency_proof(leaves, m, n)
            assert verify_consistency(m, root(leaves[:m]), n, r, p)
            if m < n:
                assert not verify_consistency(m, root(leaves[1 : m + 1]), n, r, p)
                assert not verify_consistency(m, root(leaves[:m]), n, r, p[:-1])
                assert not verify_consistency(m, root(leaves[:m]), n, r, [*p, r])


def test_the_frontier_is_the_tree():
    f = Frontier()
    for i, leaf in enumerate(HASHES):
        f.append(leaf)
        assert f.root().hex() == CT_ROOTS[i + 1]
    again = Frontier(f.size, f.hashes)
    assert again.root() == f.root()
    with pytest.raises(ValueError):
        Frontier(7, f.hashes)
