"""SIEM / GRC export of the ledger's identity events, one JSON document per line:

- `jsonl` — each event exactly as stored (hash, prev_hash: a SIEM can re-verify the chain);
- `cloudevents` — CloudEvents 1.0, structured JSON (the `cloudevents` SDK): id = event ID,
  source `urn:jitaccess:identity-events`, type `io.jitaccess.<event type>`, subject = grant ID,
  time = event time, data = the whole event; extensions `actorid`, `actorrole`;
- `ocsf` — OCSF 1.5.0 class User Access Management (3005): `credential.issued` /
  `delegation.granted` are Assign Privileges, `revocation.confirmed` and a reconciliation's
  orphan revocation are Revoke Privileges, every other step Other (99) with the event type as
  activity name; `actor` = who acted, `user` = whose access it is (the requester), `privileges` =
  the entitlement (and provider policies), `status`, `severity_id` (break-glass, failures,
  findings are High), `metadata.version` 1.5.0, `metadata.correlation_uid` = grant ID; the
  event's hash chain fields and data in `unmapped`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import select

from jitaccess.domain.events import IdentityEvent, canonical_json, parse_at
from jitaccess.ledger import Ledger
from jitaccess.ledger.store import _event, grants, identity_events

FORMATS = ("ocsf", "cloudevents", "jsonl")
OCSF_VERSION = "1.5.0"
CE_SOURCE = "urn:jitaccess:identity-events"
PRODUCT = {"name": "jitaccess", "vendor_name": "jitaccess", "version": "0.1.0"}

ASSIGN, REVOKE, OTHER = 1, 2, 99
ACTIVITY_NAMES = {ASSIGN: "Assign Privileges", REVOKE: "Revoke Privileges", OTHER: "Other"}
ACTIVITIES = {
    "credential.issued": ASSIGN,
    "delegation.granted": ASSIGN,
    "revocation.confirmed": REVOKE,
    "reconciliation.orphan_revoked": REVOKE,
    "credential.cleanup_confirmed": REVOKE,
}
SEVERITY_NAMES = {1: "Informational", 3: "Medium", 4: "High"}
FAILURE_MARKS = ("failed", "failing", "refused", "abandoned", "denied", "expired_unreviewed")
HIGH = ("revocation.failing", "review.finding", "review.overdue", "reconciliation.orphan", "reconciliation.drift")


def events_between(ledger: Ledger, since: str | None = None, until: str | None = None) -> Iterator[IdentityEvent]:
    """Events with since <= at < until, in (at, event_id) order (times in format_at form)."""
    q = select(identity_events).order_by(identity_events.c.at, identity_events.c.event_id)
    if since:
        q = q.where(identity_events.c.at >= since)
    if until:
        q = q.where(identity_events.c.at < until)
    with ledger.engine.connect() as conn:
        for r in conn.execution_options(yield_per=1000).execute(q):
            yield _event(r)


def export_lines(ledger: Ledger, fmt: str, since: str | None = None, until: str | None = None) -> Iterator[str]:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    context = _GrantContext(ledger)
    for ev in events_between(ledger, since, until):
        if fmt == "jsonl":
            yield canonical_json(ev.model_dump(mode="json"))
        elif fmt == "cloudevents":
            yield to_cloudevent(ev).decode()
        else:
            yield json.dumps(to_ocsf(ev, context.of(ev)), sort_keys=True, ensure_ascii=False)


def to_cloudevent(ev: IdentityEvent) -> bytes:
    attributes: dict[str, Any] = {
        "id": ev.event_id,
        "source": CE_SOURCE,
        "type": f"io.jitaccess.{ev.type}",
        "specversion": "1.0",
        "subject": ev.grant_id,
        "time": parse_at(ev.at),
        "datacontenttype": "application/json",
        "actorid": ev.actor.id,
        "actorrole": ev.actor.role.value,
    }
    return JSONFormat().write(CloudEvent(attributes, ev.model_dump(mode="json")))


class _GrantContext:
    """Whose access an event is about (the grant's requester) and the entitlement: from the
    grants projection, else from the chain's first event (delegations, onboardings)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.cache: dict[str, dict[str, Any]] = {}

    def of(self, ev: IdentityEvent) -> dict[str, Any]:
        gid = ev.grant_id
        if gid not in self.cache:
            with self.ledger.engine.connect() as conn:
                row = conn.execute(
                    select(grants.c.requester, grants.c.entitlement, grants.c.break_glass).where(
                        grants.c.grant_id == gid
                    )
                ).first()
            if row is not None:
                self.cache[gid] = {"user": row[0], "entitlement": row[1], "break_glass": bool(row[2])}
            else:
                first = next(iter(self.ledger.events(gid)[:1]), None)
                data = first.data if first else {}
                requester = data.get("requester")
                user = data.get("delegate") or (requester.get("id") if isinstance(requester, dict) else requester)
                self.cache[gid] = {
                    "user": user or (first.actor.id if first else None),
                    "entitlement": data.get("entitlement") or data.get("template"),
                    "break_glass": bool(data.get("break_glass")),
                }
        return self.cache[gid]


def _user(uid: str, kind: str | None = None) -> dict[str, Any]:
    type_id = {"human": 1, "service": 3, "agent": 3, "system": 3}.get(kind or "", 0)
    out: dict[str, Any] = {"uid": uid, "name": uid, "type_id": type_id}
    out["type"] = {0: "Unknown", 1: "User", 3: "System"}[type_id]
    return out


def to_ocsf(ev: IdentityEvent, context: dict[str, Any]) -> dict[str, Any]:
    activity = ACTIVITIES.get(ev.type, OTHER)
    failed = any(m in ev.type for m in FAILURE_MARKS) or ev.data.get("outcome") == "deny"
    if ev.type.startswith(HIGH) or (context.get("break_glass") and ev.type in ("grant.requested", "grant.approved")):
        severity = 4
    elif failed:
        severity = 3
    else:
        severity = 1
    privileges = [p for p in [context.get("entitlement")] if p]
    details = ev.data.get("details")
    if isinstance(details, dict) and isinstance(details.get("policies"), list):
        privileges += [str(p) for p in details["policies"]]
    user = context.get("user") or ev.actor.id
    out: dict[str, Any] = {
        "activity_id": activity,
        "activity_name": ACTIVITY_NAMES[activity] if activity != OTHER else ev.type,
        "category_uid": 3,
        "category_name": "Identity & Access Management",
        "class_uid": 3005,
        "class_name": "User Access Management",
        "type_uid": 3005 * 100 + activity,
        "type_name": f"User Access Management: {ACTIVITY_NAMES[activity]}",
        "time": int(parse_at(ev.at).timestamp() * 1000),
        "severity_id": severity,
        "severity": SEVERITY_NAMES[severity],
        "status_id": 2 if failed else 1,
        "status": "Failure" if failed else "Success",
        "message": f"{ev.type} on {ev.grant_id} by {ev.actor.id} ({ev.actor.role.value})",
        "metadata": {
            "version": OCSF_VERSION,
            "product": PRODUCT,
            "uid": ev.event_id,
            "correlation_uid": ev.grant_id,
            "sequence": ev.seq,
            "log_name": "identity_events",
            "original_time": ev.at,
        },
        "actor": {"user": _user(ev.actor.id, ev.actor.kind.value)},
        "user": _user(user, ev.actor.kind.value if user == ev.actor.id else None),
        "privileges": privileges,
        "unmapped": {
            "event_type": ev.type,
            "actor_role": ev.actor.role.value,
            "hash": ev.hash,
            "prev_hash": ev.prev_hash,
            "data": ev.data,
        },
    }
    if failed:
        codes = ev.data.get("reason_codes") or []
        out["status_detail"] = (
            ", ".join(codes) if codes else str(ev.data.get("reason") or ev.data.get("error") or ev.type)
        )
    return out
