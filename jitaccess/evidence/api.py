"""The API's view of the same evidence (GET /v1/evidence/verify, /v1/grants/{id}/evidence): the
offline verifier (jitaccess.domain.evidence_verify.verify_evidence) with the keys this process knows, and
a grant's inclusion proofs against the newest signed checkpoint."""

from __future__ import annotations

from typing import Any

from jitaccess.config import Settings
from jitaccess.config.keys import api_signer
from jitaccess.domain.commands import load_public_key
from jitaccess.evidence.offline import verify_ledger
from jitaccess.ledger import Ledger
from jitaccess.ledger.evidence_log import CheckpointError, inclusion_proofs, latest_checkpoint, load_checkpoint_key


def _checkpoint_keys(settings: Settings) -> list:
    keys = [load_public_key(k) for k in settings.checkpoint_public_keys]
    if settings.checkpoint_key_file is not None:  # the dev stack: one process holds everything
        try:
            keys.append(load_checkpoint_key(settings.checkpoint_key_file).public_key())
        except CheckpointError:
            pass
    return keys


def ledger_evidence(ledger: Ledger, settings: Settings) -> dict[str, Any]:
    signer = api_signer(settings)
    command_keys = [load_public_key(k) for k in settings.command_public_keys]
    command_keys += [signer.public_key] if signer else []
    report = verify_ledger(ledger, public_keys=_checkpoint_keys(settings), command_keys=command_keys)
    return report.model_dump(mode="json", exclude={"chains"})


def grant_log_proof(ledger: Ledger, grant_id: str) -> dict[str, Any] | None:
    """The newest checkpoint and this grant's events' audit paths in it (None: no checkpoint yet)."""
    cp = latest_checkpoint(ledger)
    if cp is None:
        return None
    events = [e.event_id for e in ledger.events(grant_id)]
    proofs = inclusion_proofs(ledger, events, cp)
    return {
        "checkpoint": cp.model_dump(mode="json"),
        "inclusion": [
            {"event_id": p.event_id, "log_index": p.log_index, "leaf_hash": p.leaf_hash, "audit_path": p.proof}
            for p in proofs
        ],
        "not_yet_checkpointed": sorted(set(events) - {p.event_id for p in proofs}),
    }
