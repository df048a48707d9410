"""The offline evidence verifier: it takes what the ledger holds — events, log entries,
checkpoints — and the public keys an auditor got out of band, recomputes every hash chain and
the Merkle tree, checks every checkpoint's signature and that each is a prefix of the log,
re-verifies the signed commands recorded on decision events, and names what it finds: an
edited, deleted, swapped or inserted event, a truncated chain, a deleted grant, a reordered
log, a checkpoint that no longer matches, was forged, altered or removed.

The log and checkpoints are jitaccess.domain.evidence; the findings jitaccess.domain.evidence_findings.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jitaccess.domain.commands import SignerRole
from jitaccess.domain.events import IdentityEvent, verify_chain
from jitaccess.domain.evidence import Checkpoint, LogEntry
from jitaccess.domain.evidence_findings import EvidenceReport, Verification
from jitaccess.domain.evidence_verify_checkpoints import check_checkpoints
from jitaccess.domain.evidence_verify_commands import check_commands
from jitaccess.domain.evidence_verify_log import check_chains, check_log


def verify_evidence(
    events: Sequence[IdentityEvent],
    log: Sequence[LogEntry],
    checkpoints: Sequence[Checkpoint],
    *,
    checkpoint_keys: Sequence[Ed25519PublicKey] = (),
    exported: Sequence[Checkpoint] = (),
    command_keys: Sequence[tuple[Ed25519PublicKey, SignerRole]] = (),
    known_chains: Iterable[str] = (),
    only: str | None = None,
) -> EvidenceReport:
    """Verify the ledger's evidence. `checkpoints` are the ledger's own; `exported` the copies
    from the checkpoint export directory (which the database's users cannot change);
    `known_chains` the grant IDs the ledger's grants table lists; `only`: report event-level
    findings for this one chain (the log and checkpoints are always checked whole)."""
    out = Verification(only)
    chains: dict[str, list[IdentityEvent]] = defaultdict(list)
    for ev in events:
        chains[ev.grant_id].append(ev)
    for evs in chains.values():
        evs.sort(key=lambda e: e.seq)
    by_id = {ev.event_id: ev for ev in events}
    entries = sorted(log, key=lambda e: e.log_index)

    leaves = check_log(entries, by_id, chains, out)
    check_chains(chains, entries, known_chains, out)
    trusted, latest = check_checkpoints(checkpoints, exported, checkpoint_keys, entries, leaves, out)
    commands = check_commands(events, command_keys, out)

    logged = {e.event_id for e in entries}
    pending = sum(1 for ev in events if ev.event_id not in logged and (only is None or ev.grant_id == only))
    if pending:
        out.notes.append(
            f"{pending} event(s) are newer than the last checkpoint: their chains are verified, but "
            "a deletion among them shows only once a checkpoint covers them"
        )
    shown = [only] if only is not None else sorted(set(chains) | {e.grant_id for e in entries} | set(known_chains))
    return EvidenceReport(
        ok=not out.findings,
        findings=out.findings,
        notes=out.notes,
        chains=[verify_chain(gid, chains.get(gid, [])) for gid in shown],
        events=len(events) if only is None else len(chains.get(only, [])),
        log_size=len(entries),
        pending=pending,
        checkpoints=trusted,
        latest_checkpoint=latest,
        commands_verified=commands,
    )
