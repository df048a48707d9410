"""Identity events and the per-grant SHA-256 hash chain.

The workflow builds the chain deterministically (event_id = <grant_id>:<seq>,
`at` = workflow time), so a replayed or retried step produces byte-identical
events and the ledger can store them idempotently.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jitaccess.domain.principals import Actor

GENESIS_HASH = "0" * 64


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def format_at(at: datetime) -> str:
    """One fixed textual form for event time (UTC, microseconds), so hashes survive storage."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_at(at: str) -> datetime:
    """An event or checkpoint time (format_at) as a datetime."""
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


class IdentityEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str
    grant_id: str
    seq: int = Field(ge=1)
    type: str
    at: str  # see format_at
    actor: Actor
    data: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        """Everything the hash covers: the whole event but the hash itself."""
        return self.model_dump(mode="json", exclude={"hash"})

    def computed_hash(self) -> str:
        return compute_hash(self.body())


def compute_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def make_event(
    grant_id: str, prev: IdentityEvent | None, type: str, at: datetime, actor: Actor, data: dict[str, Any] | None = None
) -> IdentityEvent:
    seq = 1 if prev is None else prev.seq + 1
    body = {
        "event_id": f"{grant_id}:{seq}",
        "grant_id": grant_id,
        "seq": seq,
        "type": type,
        "at": format_at(at),
        "actor": actor.model_dump(mode="json"),
        "data": json.loads(canonical_json(data or {})),
        "prev_hash": GENESIS_HASH if prev is None else prev.hash,
    }
    return IdentityEvent(**body, hash=compute_hash(body))


class ChainVerification(BaseModel):
    grant_id: str
    ok: bool
    events: int
    first_broken: str | None = None  # event_id of the first link that fails
    problem: str | None = None
    last_hash: str | None = None


def verify_chain(grant_id: str, events: Iterable[IdentityEvent]) -> ChainVerification:
    """Recompute a grant's chain in seq order and name the first broken link."""
    prev_hash = GENESIS_HASH
    n = 0
    for n, ev in enumerate(events, start=1):

        def broken(problem: str, n: int = n, ev: IdentityEvent = ev) -> ChainVerification:
            return ChainVerification(grant_id=grant_id, ok=False, events=n, first_broken=ev.event_id, problem=problem)

        if ev.grant_id != grant_id:
            return broken(f"event belongs to {ev.grant_id}, not {grant_id}")
        if ev.seq != n:
            return broken(f"sequence gap: expected seq {n}, found {ev.seq}")
        if ev.event_id != f"{grant_id}:{n}":
            return broken(f"event_id {ev.event_id!r} does not match {grant_id}:{n}")
        if ev.prev_hash != prev_hash:
            return broken(
                "prev_hash does not match the previous event's hash (an event was removed, reordered or altered)"
            )
        if ev.computed_hash() != ev.hash:
            return broken("hash does not match the event's content (the event was altered)")
        prev_hash = ev.hash
    if n == 0:
        return ChainVerification(grant_id=grant_id, ok=False, events=0, problem="no events recorded for this grant")
    return ChainVerification(grant_id=grant_id, ok=True, events=n, last_hash=prev_hash)
