"""Who may read what: one table of read rules by role, over a small set of facts per object.

Every read endpoint (and so the CLI) asks `read_role(viewer, facts)`: the first rule of
`READ_RULES` whose role the viewer holds and which covers the object. A single object the viewer
may not read does not exist for them (the API answers 404); a list shows only what they may read.
Pure: the caller resolves the viewer (groups, delegations active now) and the object's facts
(`Grant.read_facts()`, `Onboarding.read_facts()`, `chain_facts()` for a bare evidence chain).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from jitaccess.domain.principals import ActorKind, ActorRole, Principal

if TYPE_CHECKING:
    from jitaccess.domain.approval import Delegation
    from jitaccess.domain.events import IdentityEvent
    from jitaccess.domain.grant import Grant
    from jitaccess.domain.onboarding import Onboarding

DEFAULT_AUDITOR_GROUPS: tuple[str, ...] = ("auditors",)

ObjectKind = Literal["grant", "onboarding", "delegation", "reconciliation"]
CHAIN_PREFIXES: dict[str, ObjectKind] = {
    "onboarding-": "onboarding",
    "delegation-": "delegation",
    "reconciliation-": "reconciliation",
}


class ReadRole(StrEnum):
    requester = "requester"
    approver = "approver"
    reviewer = "reviewer"
    auditor = "auditor"
    admin = "admin"
    service = "service"


class ReadFacts(BaseModel):
    """What a read decision needs to know about one object (grant, onboarding, or another chain).
    Stored with each grant's ledger row (`scope`), so lists are filtered without Temporal."""

    model_config = ConfigDict(frozen=True)

    kind: ObjectKind = "grant"
    object_id: str
    requester: str | None = None
    # groups that may decide or act on it: every approval stage's groups (the grant's and an
    # extension's), escalation groups, the groups that may revoke; an onboarding's owning team
    decider_groups: tuple[str, ...] = ()
    # principals who did decide: voters (and those they acted for), a denier, a reviewer
    deciders: tuple[str, ...] = ()
    break_glass: bool = False
    reviewer_groups: tuple[str, ...] = ()  # break-glass reviewers and the review escalation groups


class Viewer(BaseModel):
    """The reader as the rules see them: who, with which authority lent to them right now."""

    model_config = ConfigDict(frozen=True)

    principal: Principal
    acting_for: tuple[Principal, ...] = ()  # delegators whose delegation to this reader is active now
    auditor: bool = False
    admin: bool = False


def viewer_for(
    principal: Principal,
    *,
    admin_groups: Sequence[str],
    auditor_groups: Sequence[str],
    delegations: Iterable[Delegation] = (),
    now: datetime | None = None,
) -> Viewer:
    """`delegations`: those made to `principal` (delegators resolved to their current groups);
    the ones active at `now` lend their authority to read what the delegator may decide."""
    acting_for = tuple(
        d.delegator for d in delegations if d.delegate == principal.id and (now is None or d.active_at(now))
    )
    return Viewer(
        principal=principal,
        acting_for=acting_for,
        auditor=principal.in_any(tuple(auditor_groups)),
        admin=principal.in_any(tuple(admin_groups)),
    )


# -- the rules --------------------------------------------------------------------------------
def _human(v: Viewer) -> bool:
    return v.principal.kind is ActorKind.human


def _non_human(v: Viewer) -> bool:
    return v.principal.kind is not ActorKind.human


def _anyone(v: Viewer) -> bool:
    return True


def _requested(v: Viewer, f: ReadFacts) -> bool:
    return f.requester is not None and f.requester == v.principal.id


def _decides(v: Viewer, f: ReadFacts) -> bool:
    """May decide it (in a decider group), or did — in person or through an active delegation."""
    return any(p.id in f.deciders or p.in_any(f.decider_groups) for p in (v.principal, *v.acting_for))


def _reviews(v: Viewer, f: ReadFacts) -> bool:
    return f.break_glass and v.principal.in_any(f.reviewer_groups)


def _all(v: Viewer, f: ReadFacts) -> bool:
    return True


@dataclass(frozen=True)
class ReadRule:
    role: ReadRole
    sees: str  # in words, for the README and refusal messages
    holds: Callable[[Viewer], bool]  # does the viewer play this role at all
    covers: Callable[[Viewer, ReadFacts], bool]  # does the role reach this object
    verify_all: bool = False  # may verify every chain in the ledger (GET /v1/evidence/verify)


READ_RULES: tuple[ReadRule, ...] = (
    ReadRule(ReadRole.admin, "everything", lambda v: v.admin, _all, verify_all=True),
    ReadRule(ReadRole.auditor, "everything", lambda v: v.auditor, _all, verify_all=True),
    ReadRule(ReadRole.requester, "the grants and onboardings they requested", _human, _requested),
    ReadRule(
        ReadRole.service,
        "the grants and onboardings it requested (an onboarding's child grants carry its requester)",
        _non_human,
        _requested,
    ),
    ReadRule(
        ReadRole.approver,
        "what they may decide (approver, escalation or revoking group; owning team; as a delegate of such "
        "an approver) or have decided",
        _anyone,
        _decides,
    ),
    ReadRule(ReadRole.reviewer, "break-glass grants they review", _anyone, _reviews),
)


def read_role(viewer: Viewer, facts: ReadFacts) -> ReadRole | None:
    """The role under which `viewer` may read the object, or None (then it does not exist for them)."""
    for rule in READ_RULES:
        if rule.holds(viewer) and rule.covers(viewer, facts):
            return rule.role
    return None


def may_read(viewer: Viewer, facts: ReadFacts) -> bool:
    return read_role(viewer, facts) is not None


def sees_everything(viewer: Viewer) -> bool:
    """Whether the viewer holds a role that covers every object (lists need no filtering)."""
    return any(rule.covers is _all and rule.holds(viewer) for rule in READ_RULES)


def may_verify_all(viewer: Viewer) -> bool:
    return any(rule.verify_all and rule.holds(viewer) for rule in READ_RULES)


def verifier_roles() -> tuple[ReadRole, ...]:
    return tuple(rule.role for rule in READ_RULES if rule.verify_all)


# -- the facts of an object ---------------------------------------------------------------------
def grant_facts(g: Grant) -> ReadFacts:
    """A grant's readers: its requester, everyone who may decide or revoke it or did, and for
    break-glass its reviewers. Stored on the grant's ledger row (`Grant.summary()`)."""
    d = g.decision
    rounds = [r for r in (g.approval, g.extension.round if g.extension else None) if r is not None]
    groups = [*d.approver_groups, *d.escalation_groups]
    groups += [grp for r in rounds for st in r.stages for grp in r.groups_for(st)]
    groups += [grp for r in rounds for grp in r.escalation_groups]
    deciders = [x for r in rounds for v in r.votes for x in (v.approver, v.actor)]
    for decided_by in (g.decided_by, g.extension.decided_by if g.extension else None):
        deciders += decided_by.split(",") if decided_by else []
    if g.review:
        deciders.append(g.review.reviewer)
    bg = d.entitlement.break_glass if d.entitlement and g.break_glass else None
    return ReadFacts(
        kind="grant",
        object_id=g.grant_id,
        requester=g.requester.id,
        decider_groups=tuple(dict.fromkeys(groups)),
        deciders=tuple(dict.fromkeys(x for x in deciders if x and x != g.requester.id)),
        break_glass=g.break_glass,
        reviewer_groups=(*bg.reviewer_groups, *bg.escalation_groups) if bg else (),
    )


def onboarding_facts(o: Onboarding) -> ReadFacts:
    """An onboarding's readers: its requester, the owning team (it approves and may offboard), the
    groups of its approval stages and who voted."""
    r = o.approval
    groups = [o.workload.owning_team]
    if r is not None:
        groups += [grp for st in r.stages for grp in r.groups_for(st)] + list(r.escalation_groups)
    deciders = [x for v in (r.votes if r else []) for x in (v.approver, v.actor)]
    return ReadFacts(
        kind="onboarding",
        object_id=o.onboarding_id,
        requester=o.requester.id,
        decider_groups=tuple(dict.fromkeys(groups)),
        deciders=tuple(dict.fromkeys(x for x in deciders if x != o.requester.id)),
    )


# -- facts of objects without a projection ------------------------------------------------------
def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(x) for x in value) if isinstance(value, list | tuple) else ()


def chain_facts(chain_id: str, events: Sequence[IdentityEvent], decider_groups: Sequence[str] = ()) -> ReadFacts:
    """An evidence chain's read facts from the chain itself, for chains with no other record
    (delegations, reconciliation runs, an onboarding Temporal no longer holds): the requester is
    the first event's actor, deciders every approver/reviewer actor (and a delegation's delegate),
    decider groups those its policy decision named plus `decider_groups` (e.g. reconciliation's)."""
    kind = next((k for prefix, k in CHAIN_PREFIXES.items() if chain_id.startswith(prefix)), "grant")
    groups: list[str] = list(decider_groups)
    deciders: list[str] = []
    requester: str | None = None
    break_glass = False
    for i, ev in enumerate(events):
        data = ev.data
        if i == 0:
            requester = ev.actor.id if ev.actor.kind is not ActorKind.system else None
        if ev.actor.role in (ActorRole.approver, ActorRole.reviewer) and ev.actor.id != requester:
            deciders.append(ev.actor.id)
        if ev.type == "delegation.granted":
            deciders += [str(data["delegate"])] if data.get("delegate") else []
        elif ev.type == "onboarding.requested" and data.get("owner"):
            groups.append(str(data["owner"]))
        elif ev.type == "policy.decided":
            groups += _strings(data.get("approver_groups")) + _strings(data.get("escalation_groups"))
            for stage in data.get("stages") or ():
                if isinstance(stage, dict):
                    groups += _strings(stage.get("approver_groups"))
            break_glass = break_glass or bool(data.get("break_glass"))
    return ReadFacts(
        kind=kind,
        object_id=chain_id,
        requester=requester,
        decider_groups=tuple(dict.fromkeys(groups)),
        deciders=tuple(dict.fromkeys(deciders)),
        break_glass=break_glass,
    )
