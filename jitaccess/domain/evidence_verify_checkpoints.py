"""The verifier's checks of the signed checkpoints: their signatures, the exported copies against
the ledger's, their own chain, and the log's Merkle roots against them
(jitaccess.domain.evidence_verify runs them).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jitaccess.domain import merkle
from jitaccess.domain.commands import public_key_id
from jitaccess.domain.evidence import Checkpoint, LogEntry, checkpoint_problem
from jitaccess.domain.evidence_findings import FindingKind, Verification


def check_checkpoints(
    ledger_cps: Sequence[Checkpoint],
    exported: Sequence[Checkpoint],
    keys: Sequence[Ed25519PublicKey],
    entries: Sequence[LogEntry],
    leaves: list[bytes],
    out: Verification,
) -> tuple[int, Checkpoint | None]:
    """Returns how many checkpoints verified, and the latest of them."""
    ring = {public_key_id(k): k for k in keys}
    if not ring:
        out.notes.append("checkpoints not checked: no checkpoint public key given (--public-key)")
        return 0, None
    trusted = trusted_checkpoints(ledger_cps, exported, ring, out)
    _check_numbering(ledger_cps, entries, out)
    ordered = [trusted[n] for n in sorted(trusted)]
    _check_succession(ordered, out)
    for cp in ordered:
        _check_root(cp, ordered, entries, leaves, out)
    if not ordered:
        out.notes.append(
            "no signed checkpoint: the hash chains are verified, but a deleted grant, a truncated chain or a "
            "consistently rewritten chain cannot be detected"
        )
    return len(ordered), (ordered[-1] if ordered else None)


def trusted_checkpoints(
    ledger_cps: Sequence[Checkpoint],
    exported: Sequence[Checkpoint],
    ring: dict[str, Ed25519PublicKey],
    out: Verification,
) -> dict[int, Checkpoint]:
    """The checkpoints whose signature verifies, by number: an exported copy wins over the
    ledger's; an exported one the ledger lost or replaced is a finding."""
    trusted: dict[int, Checkpoint] = {}
    in_ledger = {cp.number: cp for cp in ledger_cps}
    for cp in exported:
        problem = checkpoint_problem(cp, ring)
        if problem:
            out.add(FindingKind.forged_checkpoint, f"the exported copy: {problem}", checkpoint=cp.number)
            continue
        trusted[cp.number] = cp
        mine = in_ledger.get(cp.number)
        if mine is None:
            out.add(
                FindingKind.checkpoint_missing,
                "exported, but gone from the ledger: the ledger's checkpoints were deleted",
                checkpoint=cp.number,
            )
        elif mine.checkpoint_hash() != cp.checkpoint_hash():
            forged = checkpoint_problem(mine, ring)
            out.add(
                FindingKind.forged_checkpoint if forged else FindingKind.checkpoint_missing,
                "the ledger's checkpoint differs from the exported one: it was replaced"
                + (f"; the replacement is {forged}" if forged else ""),
                checkpoint=cp.number,
            )
    for cp in sorted(ledger_cps, key=lambda c: c.number):
        if cp.number in trusted:
            continue
        problem = checkpoint_problem(cp, ring)
        if problem:
            out.add(FindingKind.forged_checkpoint, problem, checkpoint=cp.number)
            continue
        trusted[cp.number] = cp
    return trusted


def _check_numbering(ledger_cps: Sequence[Checkpoint], entries: Sequence[LogEntry], out: Verification) -> None:
    """The ledger's checkpoints are numbered without a hole, and a non-empty log has one."""
    numbers = sorted({cp.number for cp in ledger_cps})
    for a, b in zip(numbers, numbers[1:]):
        if b != a + 1:
            out.add(
                FindingKind.checkpoint_missing,
                f"the ledger's checkpoints jump from #{a} to #{b}: checkpoints were deleted",
                checkpoint=a + 1,
            )
    if entries and not ledger_cps:
        out.add(
            FindingKind.checkpoint_missing,
            f"the log holds {len(entries)} entries but the ledger no checkpoint: its checkpoints were deleted",
        )


def _check_succession(ordered: list[Checkpoint], out: Verification) -> None:
    """Each trusted checkpoint names its predecessor and covers at least as much of the log."""
    for prev, cp in zip(ordered, ordered[1:]):
        if cp.number == prev.number + 1 and cp.prev_checkpoint_hash != prev.checkpoint_hash():
            out.add(
                FindingKind.checkpoint_chain,
                f"does not name checkpoint #{prev.number} as its predecessor",
                checkpoint=cp.number,
            )
        if cp.tree_size < prev.tree_size:
            out.add(
                FindingKind.checkpoint_chain,
                f"covers {cp.tree_size} events, fewer than checkpoint #{prev.number} ({prev.tree_size})",
                checkpoint=cp.number,
            )


def _root_matches(cp: Checkpoint, leaves: list[bytes]) -> bool:
    return merkle.root(leaves[: cp.tree_size]).hex() == cp.root_hash


def _check_root(
    cp: Checkpoint, ordered: list[Checkpoint], entries: Sequence[LogEntry], leaves: list[bytes], out: Verification
) -> None:
    """The log's first `tree_size` leaves still hash to the checkpoint's signed root; if not, name
    the span after the largest checkpoint that still matches."""
    if cp.tree_size > len(leaves):
        out.add(
            FindingKind.checkpoint_mismatch,
            f"signs {cp.tree_size} log entries but the log holds {len(leaves)}: the log was truncated "
            f"(positions {len(leaves)}..{cp.tree_size - 1} are gone)",
            checkpoint=cp.number,
        )
        return
    if _root_matches(cp, leaves):
        return
    lo = max(
        (c.tree_size for c in ordered if c.tree_size <= cp.tree_size and c is not cp and _root_matches(c, leaves)),
        default=0,
    )
    span = entries[lo : cp.tree_size]
    names = ", ".join(e.event_id for e in span[:5]) + (", ..." if len(span) > 5 else "")
    out.add(
        FindingKind.checkpoint_mismatch,
        f"the log's first {cp.tree_size} entries no longer hash to this checkpoint's signed root: an event "
        f"at positions {lo}..{cp.tree_size - 1} ({names}) was edited, removed, reordered or its chain "
        "rewritten",
        checkpoint=cp.number,
    )
