"""What the evidence verifier (jitaccess.domain.evidence_verify) finds, and the report it returns.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jitaccess.domain.events import ChainVerification
from jitaccess.domain.evidence import Checkpoint, LogEntry


class FindingKind(StrEnum):
    edited_event = "edited_event"  # an event's content differs from what was logged / its hash
    deleted_event = "deleted_event"  # a logged event is gone from inside a chain
    truncated_chain = "truncated_chain"  # a chain's last logged event(s) are gone
    deleted_grant = "deleted_grant"  # every event of a chain is gone
    swapped_events = "swapped_events"  # an event sits at another event's place in its chain
    inserted_event = "inserted_event"  # an event not in the log although later ones of its chain are
    reordered_log = "reordered_log"  # the log holds a chain's events out of order
    broken_chain = "broken_chain"  # a hash chain does not verify (first broken link)
    log_gap = "log_gap"  # log positions are missing
    checkpoint_mismatch = "checkpoint_mismatch"  # the log no longer hashes to a signed checkpoint
    forged_checkpoint = "forged_checkpoint"  # not signed by the checkpoint key, or altered
    checkpoint_missing = "checkpoint_missing"  # a checkpoint was removed or replaced
    checkpoint_chain = "checkpoint_chain"  # a checkpoint does not name its predecessor
    bad_command = "bad_command"  # a recorded signed command does not verify or does not match


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: FindingKind
    message: str
    grant_id: str | None = None
    event_id: str | None = None
    checkpoint: int | None = None
    log_index: int | None = None

    def line(self) -> str:
        where = self.event_id or self.grant_id or (f"checkpoint #{self.checkpoint}" if self.checkpoint else "log")
        return f"{self.kind.value}: {where}: {self.message}"


class EvidenceReport(BaseModel):
    ok: bool
    findings: list[Finding]
    notes: list[str] = Field(default_factory=list)
    chains: list[ChainVerification] = Field(default_factory=list)
    events: int = 0
    log_size: int = 0
    pending: int = 0  # events not yet in the log (newer than the last checkpoint)
    checkpoints: int = 0  # signed checkpoints verified
    latest_checkpoint: Checkpoint | None = None
    commands_verified: int = 0


class Verification:
    """The findings and notes of one verifier run; `only` keeps event-level findings to one chain."""

    def __init__(self, only: str | None) -> None:
        self.only = only
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.flagged: set[str] = set()  # grant IDs with a precise finding already

    def add(self, kind: FindingKind, message: str, **where: Any) -> None:
        gid = where.get("grant_id")
        if self.only is not None and gid is not None and gid != self.only:
            return
        if gid is not None:
            self.flagged.add(gid)
        self.findings.append(Finding(kind=kind, message=message, **where))

    def add_at(self, kind: FindingKind, message: str, entry: LogEntry) -> None:
        """A finding about the event a log entry names, at that entry's position."""
        self.add(kind, message, grant_id=entry.grant_id, event_id=entry.event_id, log_index=entry.log_index)
