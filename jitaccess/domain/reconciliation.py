"""Reconciliation: what the targets hold compared with what the grants say (pure: no I/O, no clock).

The activity collects a `Snapshot` — every provider's `list_managed()` and, for every grant
the ledger says may hold access (plus every grant ID found at a target), its state, its
issued credential (from its `credential.issued` event) and a read-back of that credential
(`verify_active`) — and `compare()` turns it into findings:

ORPHAN    access exists at the target but its grant holds none: the grant is unknown (no
          ledger record and no workflow), ended (revoked, expired, denied, ...) or not yet
          issued; also a listed object with no grant ID at all. Matched by the object's
          grant tag (`IssuedCredential.grant_id` from list_managed), never by reference.
          Remedy: revoke, confirmed by read-back.
DRIFT     a grant is `active` but its access is gone at the target. Matched grant-first:
          for providers that list per-grant objects, no listed object is the issued one
          (see `MatchRule.issued_key`); for every provider, the read-back of the issued
          credential (`verify_active`) says it is not live. Remedy: signal the grant's own
          workflow (`report_drift`), which records `reconciliation.drift_detected` on its
          chain and marks the grant.
MISMATCH  access at the target differs from what was approved. (a) The issued object itself
          has details other than the approved ones (`MatchRule.compare`, e.g. policies, or a
          requester tag naming someone else): record and alert; revoking it would cut the
          approved access, so a person decides. (b) Another object tagged with a live grant's
          ID that the grant never issued and that carries other access (extra policies,
          another provider, another requester): record, alert, and revoke that object — it is
          not approved access, and the grant's own credential is untouched. An extra object
          with exactly the approved access is a duplicate and reported as an ORPHAN.

Grants in `issuing`, `revoking` or `revocation_failing` are left alone (their workflow is
changing the target right now); a grant whose state could not be established (`uncertain`)
produces no finding either way; a provider whose listing failed produces none at all — a
failed read never turns into "everything is gone".

Per provider (`PROFILES`):
- vault_token: one token per grant; issued reference = token accessor = listed reference;
  compared: policies, requester. The listing is a fresh accessor list with each token's metadata
  and policies (which Vault never changes once a token exists), so a listed issued token is not read
  back a second time (`listing_reads_back`).
- vault_approle: one secret-ID per grant; issued reference = secret-ID accessor = listed
  reference; compared: policies (the role's token_policies), role_name, requester.
- vault_database: issue() returns the lease ID, list_managed() the per-grant owner token
  (reference = its accessor); the issued credential names that token in
  details.token_accessor, which is what a listed object is matched on; compared: role,
  requester. A lease revoked or a database user dropped by hand while the owner token lives
  is found by the read-back (lease lookup / pg_roles).
- aws_iam_group, aws_identity_center: shared targets with no per-grant tags (list_managed
  returns nothing): no orphan or mismatch detection; drift by read-back only.
- aws_sts_session: list_managed returns revocation documents (sessions already denied),
  not live access: not used for orphans; drift by read-back (which sees a revocation deny).
- any other provider: its list_managed is taken at its word (objects tagged with a grant
  ID), one object per grant, matched by reference, nothing compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jitaccess.domain.commands import CommandAuth
from jitaccess.domain.credentials import IssuedCredential
from jitaccess.domain.states import HOLDS_ACCESS, GrantState

CHAIN_PREFIX = "reconciliation-"  # a run's evidence chain (and workflow ID) is reconciliation-<run_id>


def chain_id(run_id: str) -> str:
    return run_id if run_id.startswith(CHAIN_PREFIX) else CHAIN_PREFIX + run_id


class FindingKind(StrEnum):
    orphan = "orphan"
    drift = "drift"
    mismatch = "mismatch"


class Remedy(StrEnum):
    revoke = "revoke"  # revoke the object at the target and confirm by read-back
    signal_grant = "signal_grant"  # tell the grant's workflow (it records on its own chain)
    alert = "alert"  # record and alert; a person decides


class Remediation(BaseModel):
    """What the run did about a finding."""

    model_config = ConfigDict(frozen=True)

    action: Literal["none", "revoked", "revoke_failed", "signalled", "signal_failed", "alerted"]
    confirmed: bool | None = None  # revocation confirmed by read-back
    already_gone: bool | None = None
    detail: str = ""


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: FindingKind
    provider: str
    grant_id: str
    reference: str | None = None  # the object at the target (for drift: the issued reference)
    detail: str
    remedy: Remedy
    grant_state: str | None = None  # the state reconciliation saw; None = no such grant
    issued_reference: str | None = None  # the grant's own credential, when it has one
    expected: dict[str, Any] | None = None  # the approved details compared
    observed: dict[str, Any] | None = None  # what the target shows
    credential: IssuedCredential | None = None  # the object to act on (orphan / extra object / drift: issued)
    run_id: str | None = None  # the reconciliation run that found it (set when it is acted on)
    remediation: Remediation | None = None

    def evidence(self) -> dict[str, Any]:
        """Event data: the finding without the full credential object (reference and details suffice)."""
        data = self.model_dump(mode="json", exclude={"credential", "remediation"})
        if self.remediation is not None:
            data["remediation"] = self.remediation.model_dump(mode="json")
        return data


class DriftReport(BaseModel):
    """Reconciliation telling a grant's workflow that its access is gone at the target."""

    finding: Finding
    auth: CommandAuth | None = None  # signed by the reconciling worker (verified by the grant)


class GrantRecord(BaseModel):
    """What the ledger (or, when it may lag, the live workflow) says about one grant."""

    grant_id: str
    state: str | None = None  # None: no such grant (no ledger record, no workflow)
    source: Literal["ledger", "workflow", "none"] = "ledger"
    provider: str | None = None
    requester: str | None = None
    credential: IssuedCredential | None = None  # from its credential.issued event
    expires_at: datetime | None = None  # the grant's (extensions included); its target TTL ends with it
    read_back_ok: bool | None = None  # verify_active on `credential`; None when not checked / failed
    read_back: str | None = None
    uncertain: bool = False  # the state could not be established: no finding either way
    note: str | None = None


class Inventory(BaseModel):
    provider: str
    listed: list[IssuedCredential] = Field(default_factory=list)
    error: str | None = None  # listing failed: no findings for this provider


class Snapshot(BaseModel):
    inventories: list[Inventory] = Field(default_factory=list)
    grants: dict[str, GrantRecord] = Field(default_factory=dict)
    taken_at: datetime | None = None  # when the targets had been read (after the listings)


# A target's own TTL ends a grant's access at its expiry (Vault: the remaining whole seconds,
# rounded down at issue, so up to a second early), while its workflow records the revocation a
# moment later: an `active` grant this close to its expiry whose access is gone is not drift.
EXPIRY_MARGIN = timedelta(seconds=2)


def expiring(g: GrantRecord, at: datetime | None) -> bool:
    return g.expires_at is not None and at is not None and g.expires_at <= at + EXPIRY_MARGIN


class ProviderSummary(BaseModel):
    provider: str
    listed: int = 0
    orphan_detection: bool = True
    error: str | None = None
    note: str | None = None


class Comparison(BaseModel):
    findings: list[Finding] = Field(default_factory=list)
    providers: list[ProviderSummary] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class MatchRule:
    lists_per_grant: bool = True  # list_managed returns each grant's own access, tagged with its grant ID
    issued_key: str = "reference"  # which field of the issued credential a listed reference equals
    compare: tuple[str, ...] = ()  # detail keys whose values must equal the approved ones
    # list_managed shows each object as verify_active would (live now, tagged with the grant, its
    # compared details): an issued object it lists needs no second read-back (`needs_read_back`)
    listing_reads_back: bool = False
    note: str | None = None

    def issued_ref(self, cred: IssuedCredential) -> str | None:
        if self.issued_key == "reference":
            return cred.reference
        value = cred.details.get(self.issued_key)
        return str(value) if value else None


PROFILES: dict[str, MatchRule] = {
    "vault_token": MatchRule(compare=("policies", "requester"), listing_reads_back=True),
    "vault_approle": MatchRule(compare=("policies", "role_name", "requester")),
    "vault_database": MatchRule(
        issued_key="token_accessor",
        compare=("role", "requester"),
        note="listed objects are the per-grant lease owner tokens, matched on the issued lease's token_accessor",
    ),
    "aws_iam_group": MatchRule(
        lists_per_grant=False,
        note="shared target without per-grant tags: no orphan/mismatch detection; drift by read-back",
    ),
    "aws_identity_center": MatchRule(
        lists_per_grant=False,
        note="shared target without per-grant tags: no orphan/mismatch detection; drift by read-back",
    ),
    "aws_sts_session": MatchRule(
        lists_per_grant=False,
        note="list_managed shows revocation documents (already denied), not live sessions: drift by read-back only",
    ),
}
DEFAULT_RULE = MatchRule()


def rule_for(provider: str) -> MatchRule:
    return PROFILES.get(provider, DEFAULT_RULE)


_ORDER = {FindingKind.orphan: 0, FindingKind.drift: 1, FindingKind.mismatch: 2}
_QUIET = frozenset({GrantState.issuing, GrantState.revoking, GrantState.revocation_failing})


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple, set)):
        return sorted(str(x) for x in v)
    return v


def _differences(rule: MatchRule, approved: dict[str, Any], observed: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """key -> (approved, observed) for every compared key both sides state and that differs."""
    out = {}
    for key in rule.compare:
        if key in approved and key in observed and approved[key] is not None and observed[key] is not None:
            a, o = _norm(approved[key]), _norm(observed[key])
            if a != o:
                out[key] = (a, o)
    return out


def _describe(diffs: dict[str, tuple[Any, Any]]) -> str:
    parts = []
    for key, (a, o) in diffs.items():
        if isinstance(a, list) and isinstance(o, list):
            extra, missing = sorted(set(o) - set(a)), sorted(set(a) - set(o))
            bits = ([f"extra {extra}"] if extra else []) + ([f"missing {missing}"] if missing else [])
            parts.append(f"{key} {o} differ from approved {a} ({', '.join(bits)})")
        else:
            parts.append(f"{key} {o!r} differs from approved {a!r}")
    return "; ".join(parts)


def _approved(g: GrantRecord) -> dict[str, Any]:
    """The approved details: the issued credential's, plus the grant's requester."""
    approved = dict(g.credential.details) if g.credential else {}
    if g.requester:
        approved["requester"] = g.requester
    return approved


def listed_live(inventories: list[Inventory]) -> set[tuple[str, str, str]]:
    """(provider, grant ID, reference) of every object that a listing which reads objects back
    (`MatchRule.listing_reads_back`) found live."""
    return {
        (inv.provider, o.grant_id, o.reference)
        for inv in inventories
        if inv.error is None and rule_for(inv.provider).listing_reads_back
        for o in inv.listed
    }


def needs_read_back(g: GrantRecord, live: set[tuple[str, str, str]]) -> bool:
    """An active grant's issued credential is read back (`verify_active`) unless a listing that
    reads back (`listed_live`) already found it live: at thousands of grants that halves the calls
    a scan makes to the target. Not listed there, it is drift whether read back or not."""
    if g.state != GrantState.active.value or g.credential is None:
        return False
    issued = rule_for(g.credential.provider).issued_ref(g.credential)
    return (g.credential.provider, g.grant_id, issued) not in live


def holds(state: str | None) -> bool:
    """Does a grant in this state hold access (HOLDS_ACCESS)?"""
    return state is not None and state in {s.value for s in HOLDS_ACCESS}


def compare(snapshot: Snapshot) -> Comparison:
    """Findings, sorted (orphans, drift, mismatches; then provider, grant, reference)."""
    findings: list[Finding] = []
    notes: list[str] = []
    summaries: list[ProviderSummary] = []
    inventories = {inv.provider: inv for inv in snapshot.inventories}
    listed: dict[tuple[str, str], set[str]] = {}  # (provider, grant ID) -> listed references
    for inv in snapshot.inventories:
        for obj in inv.listed:
            listed.setdefault((inv.provider, obj.grant_id), set()).add(obj.reference)

    for inv in sorted(snapshot.inventories, key=lambda i: i.provider):
        rule = rule_for(inv.provider)
        summaries.append(
            ProviderSummary(
                provider=inv.provider,
                listed=len(inv.listed),
                orphan_detection=rule.lists_per_grant and inv.error is None,
                error=inv.error,
                note=rule.note,
            )
        )
        if inv.error is not None:
            notes.append(f"{inv.provider}: listing failed ({inv.error}); no findings for this provider in this run")
            continue
        if not rule.lists_per_grant:
            continue
        by_grant: dict[str, list[IssuedCredential]] = {}
        for obj in inv.listed:
            by_grant.setdefault(obj.grant_id, []).append(obj)
        for gid, objs in by_grant.items():
            findings.extend(_target_side(inv.provider, rule, gid, objs, snapshot.grants.get(gid), notes))

    for gid in sorted(snapshot.grants):
        g = snapshot.grants[gid]
        if g.state != GrantState.active.value or g.credential is None:
            continue
        if g.uncertain:
            notes.append(f"{gid}: state could not be established ({g.note or 'workflow unreachable'}); not judged")
            continue
        provider = g.credential.provider
        held = inventories.get(provider)
        if held is None:
            notes.append(f"{gid}: provider {provider} is not configured on this worker; not checked")
            continue
        if held.error is not None:
            continue
        if expiring(g, snapshot.taken_at):
            continue  # its target TTL ends it; its workflow is revoking it now
        f = _drift(provider, rule_for(provider), g, listed.get((provider, gid), set()), findings)
        if f is not None:
            findings.append(f)

    findings.sort(key=lambda f: (_ORDER[f.kind], f.provider, f.grant_id, f.reference or ""))
    return Comparison(findings=findings, providers=summaries, notes=notes)


def _target_side(
    provider: str, rule: MatchRule, gid: str, objs: list[IssuedCredential], g: GrantRecord | None, notes: list[str]
) -> list[Finding]:
    """Objects at the target tagged with one grant ID: orphans, duplicates and mismatches."""
    if g is not None and g.uncertain:
        notes.append(
            f"{gid}: state could not be established ({g.note or 'workflow unreachable'}); "
            f"{len(objs)} object(s) at {provider} left alone"
        )
        return []
    state = g.state if g is not None else None
    if g is None or not gid or not holds(state):
        return _orphans(provider, gid, objs, g)
    if g.credential is None or state in _QUIET:
        return []  # being issued / revoked right now: its workflow owns the target
    issued = rule.issued_ref(g.credential) if g.credential.provider == provider else None
    approved = _approved(g)
    out: list[Finding] = []
    for obj in objs:
        diffs = _differences(rule, approved, obj.details)
        if issued is not None and obj.reference == issued:
            if diffs:
                detail = f"the grant's credential differs from what was approved: {_describe(diffs)}"
                finding = _at_target(FindingKind.mismatch, Remedy.alert, provider, gid, g, obj, detail, **_sides(diffs))
                out.append(finding)
        else:
            out.append(_not_issued(provider, gid, g, obj, diffs))
    return out


def _at_target(
    kind: FindingKind,
    remedy: Remedy,
    provider: str,
    gid: str,
    g: GrantRecord | None,
    obj: IssuedCredential,
    detail: str,
    **compared: dict[str, Any] | None,
) -> Finding:
    """A finding about one object listed at the target, tagged with grant ID `gid` (whose record
    is `g`, if any); `compared` holds what was expected and observed."""
    return Finding(
        kind=kind,
        provider=provider,
        grant_id=gid,
        reference=obj.reference,
        detail=detail,
        remedy=remedy,
        grant_state=g.state if g is not None else None,
        issued_reference=g.credential.reference if g is not None and g.credential else None,
        credential=obj,
        **compared,
    )


def _sides(diffs: dict[str, tuple[Any, Any]]) -> dict[str, dict[str, Any] | None]:
    """The differing keys as the finding's expected (approved) and observed sides."""
    return {"expected": {k: a for k, (a, _) in diffs.items()}, "observed": {k: o for k, (_, o) in diffs.items()}}


def _orphans(provider: str, gid: str, objs: list[IssuedCredential], g: GrantRecord | None) -> list[Finding]:
    """Objects whose grant holds no access (or that carry no grant ID): each is revoked."""
    state = g.state if g is not None else None
    why = (
        "tagged as managed by jitaccess but carries no grant ID"
        if not gid
        else f"grant {gid} is unknown (no ledger record, no workflow)"
        if state is None
        else f"grant {gid} is {state}: it holds no access"
    )
    detail = f"access exists at {provider} but {why}"
    return [
        _at_target(FindingKind.orphan, Remedy.revoke, provider, gid, g, obj, detail, observed=dict(obj.details))
        for obj in objs
    ]


def _not_issued(
    provider: str, gid: str, g: GrantRecord, obj: IssuedCredential, diffs: dict[str, tuple[Any, Any]]
) -> Finding:
    """An object carrying a live grant's tag that the grant never issued: a mismatch if it grants
    other access, else a duplicate (an orphan); either way it is revoked."""
    assert g.credential is not None
    if g.credential.provider != provider:
        diffs["provider"] = (g.credential.provider, provider)
    issued = g.credential.reference
    if diffs:
        detail = (
            f"an object tagged with {gid} that the grant did not issue (issued: {issued}) "
            f"carries other access: {_describe(diffs)}"
        )
        return _at_target(FindingKind.mismatch, Remedy.revoke, provider, gid, g, obj, detail, **_sides(diffs))
    detail = (
        f"duplicate: an object tagged with {gid} that the grant did not issue "
        f"(issued: {issued}); same access as approved"
    )
    return _at_target(FindingKind.orphan, Remedy.revoke, provider, gid, g, obj, detail, observed=dict(obj.details))


def _drift(provider: str, rule: MatchRule, g: GrantRecord, listed: set[str], found: list[Finding]) -> Finding | None:
    """An active grant whose access is gone: its issued object is not `listed` (the references
    listed at the provider with the grant's ID), or its read-back fails."""
    assert g.credential is not None
    issued = rule.issued_ref(g.credential)
    missing = None
    if rule.lists_per_grant:
        if issued is not None and issued not in listed:
            missing = f"no object at {provider} is the one issued ({issued})"
    if missing is None and g.read_back_ok is not False:
        return None
    if missing is None and any(
        f.kind is FindingKind.mismatch and f.grant_id == g.grant_id and f.reference == issued for f in found
    ):
        return None  # the read-back failed because the object differs: reported as a mismatch
    detail = "; ".join(x for x in (missing, f"read-back: {g.read_back}" if g.read_back else None) if x)
    return Finding(
        kind=FindingKind.drift,
        provider=provider,
        grant_id=g.grant_id,
        reference=g.credential.reference,
        detail=f"grant is active but its access is gone at {provider}: {detail}",
        remedy=Remedy.signal_grant,
        grant_state=g.state,
        issued_reference=g.credential.reference,
        expected=_approved(g),
        credential=g.credential,
    )


def candidates(c: Comparison) -> list[str]:
    """Grant IDs whose findings depend on a state the ledger may report late (checked live before acting)."""
    return sorted({f.grant_id for f in c.findings if f.grant_id})


class ReconcileInput(BaseModel):
    dry_run: bool = False
    run_id: str | None = None  # default: from the workflow ID (reconciliation-<run_id>)
    requested_by: str | None = None  # who asked (API/CLI); None = the schedule
    requested_by_kind: str | None = None


class ReconciliationReport(BaseModel):
    run_id: str
    chain_id: str
    dry_run: bool
    requested_by: str | None = None
    started_at: str
    completed_at: str | None = None
    findings: list[Finding] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    providers: list[ProviderSummary] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    error: str | None = None  # the scan itself failed
    events: int = 0
    last_hash: str | None = None

    def count(self) -> dict[str, int]:
        counts = {k.value: 0 for k in FindingKind}
        for f in self.findings:
            counts[f.kind.value] += 1
        counts["remediated"] = sum(
            1 for f in self.findings if f.remediation and f.remediation.action in ("revoked", "signalled", "alerted")
        )
        counts["failed"] = sum(
            1 for f in self.findings if f.remediation and f.remediation.action in ("revoke_failed", "signal_failed")
        )
        return counts
