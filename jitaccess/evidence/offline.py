"""Load what the offline verifier needs from a ledger database and verify it
(jitaccess.domain.evidence_verify.verify_evidence)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jitaccess.domain.commands import SignerRole
from jitaccess.domain.evidence_findings import EvidenceReport
from jitaccess.domain.evidence_verify import verify_evidence
from jitaccess.ledger import Ledger
from jitaccess.ledger.evidence_log import (
    all_events,
    checkpoints,
    known_grant_ids,
    load_public_key_file,
    log_entries,
    read_exports,
)


def read_keys(paths: Sequence[Path]) -> list[Ed25519PublicKey]:
    return [load_public_key_file(p) for p in paths]


def verify_ledger(
    ledger: Ledger,
    *,
    public_keys: Sequence[Ed25519PublicKey] = (),
    checkpoints_dir: Path | None = None,
    command_keys: Sequence[Ed25519PublicKey] = (),
    worker_keys: Sequence[Ed25519PublicKey] = (),
    grant_id: str | None = None,
) -> EvidenceReport:
    exported = read_exports(checkpoints_dir) if checkpoints_dir is not None else []
    report = verify_evidence(
        all_events(ledger),
        log_entries(ledger),
        checkpoints(ledger),
        checkpoint_keys=public_keys,
        exported=exported,
        command_keys=[(k, SignerRole.api) for k in command_keys] + [(k, SignerRole.worker) for k in worker_keys],
        known_chains=known_grant_ids(ledger),
        only=grant_id,
    )
    if checkpoints_dir is not None and not exported:
        report.notes.append(f"no exported checkpoint in {checkpoints_dir}")
    return report
