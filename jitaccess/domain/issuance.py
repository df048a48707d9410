"""The issuer's last check: before a worker issues anything, it re-proves the grant from signed
evidence alone — the request and decision the API signed, the votes the rule needs, each signed
by the API that authenticated the voter — and takes the provider and its params from its own
catalogue. Whatever a workflow task says (it may come from a rogue poller of the task queue, or
from a workflow started by hand), nothing unapproved is issued.

Pure: the verifier and catalogue are handed in.
"""

from __future__ import annotations

from datetime import timedelta

from jitaccess.domain.approval import ApprovalRound, Vote, authorise_vote
from jitaccess.domain.catalogue import Catalogue, Entitlement
from jitaccess.domain.commands import CommandVerifier, SignerRole
from jitaccess.domain.credentials import ProviderGrant
from jitaccess.domain.grant import IssueRequest
from jitaccess.domain.policy import Outcome, PolicyDecision
from jitaccess.domain.refusals import Refusal, RefusalKind

START_GRANT = "start:GrantWorkflow"


def _refuse(rule: str, message: str) -> Refusal:
    return Refusal(RefusalKind.forbidden, rule, message)


def authorise_issue(req: IssueRequest, catalogue: Catalogue, verifier: CommandVerifier) -> ProviderGrant:
    """The provider grant to issue, built from the worker's catalogue; Refusal naming what failed."""
    inp, asked = req.request, req.grant
    if inp.grant_id != asked.grant_id:
        raise _refuse("foreign_request", f"issue for {asked.grant_id} carries the request of {inp.grant_id}")
    verifier.verify(inp, inp.grant_id, START_GRANT, None, (SignerRole.api, SignerRole.worker))
    d = inp.decision
    if d.outcome is not Outcome.allow:
        raise _refuse("not_allowed", f"the signed decision for {inp.grant_id} does not allow it ({d.rule})")
    ent = _worker_entitlement(inp.request.entitlement, d, catalogue)
    if not (d.auto_approved or d.break_glass):
        _require_approvals(req, verifier)
    limit = ent.break_glass.max_duration if d.break_glass and ent.break_glass else ent.max_duration
    if timedelta(seconds=asked.ttl_seconds) > limit:
        raise _refuse(
            "duration_exceeds_max",
            f"issue asks for {asked.ttl_seconds}s; {ent.id} allows at most {int(limit.total_seconds())}s",
        )
    return asked.model_copy(
        update={
            "provider": ent.provider.type,
            "params": dict(ent.provider.params),
            "principal": inp.requester.id,
            "max_ttl_seconds": int(limit.total_seconds()),
        }
    )


def _worker_entitlement(entitlement_id: str, d: PolicyDecision, catalogue: Catalogue) -> Entitlement:
    ent = catalogue.get(entitlement_id)
    if ent is None:
        raise _refuse("not_in_catalogue", f"{entitlement_id!r} is not in this worker's catalogue")
    signed = d.entitlement
    if signed is None or signed.model_dump(mode="json") != ent.model_dump(mode="json"):
        raise _refuse(
            "catalogue_mismatch",
            f"{entitlement_id} as decided (policy {d.policy_version}) differs from this worker's catalogue "
            f"(policy {catalogue.version}); nothing is issued from a definition the worker does not hold",
        )
    return ent


def _require_approvals(req: IssueRequest, verifier: CommandVerifier) -> None:
    """Replay the signed votes through the same rules the workflow applied; the round must complete."""
    inp, d = req.request, req.request.decision
    assert inp.auth is not None  # verified by the caller
    requested_at = inp.auth.issued_at
    rnd = ApprovalRound.for_grant(d, requested_at)  # step-up too, as the rule demanded it
    subject = f"grant {inp.grant_id} ({inp.request.entitlement})"
    for vote in req.approvals:
        auth = verifier.verify(vote, inp.grant_id, "approve", None, (SignerRole.api,))
        rnd.escalated = d.escalate_after is not None and auth.issued_at >= requested_at + d.escalate_after
        authority = authorise_vote(rnd, inp.requester, subject, vote.actor, auth.issued_at, vote.delegations, "approve")
        rnd.votes.append(Vote.cast(authority, vote.actor, auth.issued_at))
    if not rnd.complete:
        pending = "; ".join(f"{p['stage']}: {p['have']}/{p['need']}" for p in rnd.pending())
        raise _refuse("approvals_missing", f"{subject} lacks the signed approvals its rule needs ({pending})")
