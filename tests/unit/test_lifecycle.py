"""The grant lifecycle state machine (jitaccess.domain.lifecycle), from one table:
state x command/timer -> new state + effects (or the refusal's rule). Pure: milliseconds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.credentials import IssuedCredential, IssueResult, RevocationResult, WrappedHandover
from jitaccess.domain.grant import ActionInput, ExtendInput, Grant, GrantInput, Refusal, RefusalKind, ReviewInput
from jitaccess.domain.lifecycle import Lifecycle
from jitaccess.domain.lifecycle_effects import (
    Approve,
    Claim,
    CleanedUp,
    Deny,
    Effect,
    Emit,
    Extend,
    ExtensionApplied,
    ExtensionFailed,
    Issued,
    IssueFailed,
    IssueRefused,
    Message,
    Notify,
    ParentRevoke,
    ReportDrift,
    Revoke,
    RevokeAttempted,
    SubmitReview,
    Tick,
    Timer,
)
from jitaccess.domain.lifecycle_schedule import ARM_AHEAD, TWO_STEPS_BEYOND, timer_end
from jitaccess.domain.policy import AccessRequest, evaluate, evaluate_extension
from jitaccess.domain.principals import Actor, ActorKind, ActorRole, Principal
from jitaccess.domain.reconciliation import Finding, FindingKind, Remedy
from jitaccess.domain.states import ACCESS_ENDED, HOLDS_ACCESS, TERMINAL, TRANSITIONS, ReviewStatus
from jitaccess.domain.states import ExtensionStatus as X
from jitaccess.domain.states import GrantState as S

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
ALICE = Principal(id="alice", groups=("platform", "oncall"))
BOB = Principal(id="bob", groups=("security",))
CAROL = Principal(id="carol", groups=("security",))
ERIN = Principal(id="erin", groups=("jitaccess-admins",))
GRACE = Principal(id="grace", groups=("security-leads",))
MALLORY = Principal(id="mallory", groups=("marketing",))
PARENT = Actor(id="onboarding-1", kind=ActorKind.service, role=ActorRole.system)
OPTIONS = GrantOptions(expiry_warning_lead=timedelta(minutes=5))
CATALOGUE = Catalogue.model_validate(
    {
        "entitlements": [
            {
                "id": "db",
                "description": "db",
                "provider": {"type": "vault_token", "params": {"policies": ["p"]}},
                "default_duration": "PT30M",
                "max_duration": "PT2H",
                "requester_groups": ["platform"],
                "approval": {
                    "approver_groups": ["security"],
                    "timeout": "PT1H",
                    "reminder_every": "PT10M",
                    "escalate_after": "PT25M",
                    "escalation_groups": ["security-leads"],
                },
                "break_glass": {
                    "groups": ["oncall"],
                    "max_duration": "PT1H",
                    "reviewer_groups": ["security"],
                    "review_deadline": "P1D",
                    "review_reminder_every": "PT6H",
                    "escalation_groups": ["security-leads"],
                },
            }
        ]
    }
)


# -- the states a table row starts from ------------------------------------------------------
def awaiting(break_glass: bool = False) -> Lifecycle:
    request = AccessRequest(entitlement="db", reason="fix", break_glass=break_glass, incident="INC-7")
    decision = evaluate(CATALOGUE, ALICE, request)
    assert decision.allowed, decision.messages
    inp = GrantInput(
        grant_id="g-1", requester=ALICE, request=request, decision=decision, admin_groups=("jitaccess-admins",)
    )
    life = Lifecycle(Grant.from_input(inp), OPTIONS)
    life.grant.move(S.policy_evaluated)
    if break_glass:
        life.grant.move(S.approved)
    else:
        life.open_approval(NOW)
    return life


def approved() -> Lifecycle:
    life = awaiting()
    life.handle(Approve(ActionInput(actor=BOB)), NOW)
    return life


def active() -> Lifecycle:
    life = approved()
    g = life.grant
    g.move(S.issuing)
    g.move(S.active)
    g.issued_at, g.expires_at = NOW, NOW + g.duration
    g.credential = IssuedCredential(provider="vault_token", grant_id="g-1", reference="acc-1")
    g.handover = WrappedHandover(wrapping_token="hvs.wrap", expires_at=NOW + 5 * MIN)
    life.begin_active()
    return life


def extension(minutes: int = 15, requester: Principal = ALICE) -> ExtendInput:
    d = evaluate_extension(CATALOGUE_DECISION, ALICE, timedelta(minutes=30), timedelta(minutes=minutes), NOW)
    return ExtendInput(actor=requester, reason="more", decision=d)


CATALOGUE_DECISION = evaluate(CATALOGUE, ALICE, AccessRequest(entitlement="db", reason="fix"))


def extension_pending() -> Lifecycle:
    life = active()
    life.handle(Extend(extension()), NOW)
    return life


def extension_approved() -> Lifecycle:
    life = extension_pending()
    life.handle(Approve(ActionInput(actor=BOB)), NOW)
    return life


def revoked(break_glass: bool = True) -> Lifecycle:
    life = awaiting(break_glass) if break_glass else approved()
    g = life.grant
    g.move(S.issuing)
    g.move(S.active)
    g.move(S.revoking)
    g.move(S.revoked)
    return life


def in_review() -> Lifecycle:
    life = revoked()
    life.open_review(NOW)
    return life


def review_overdue() -> Lifecycle:
    life = in_review()
    life.handle(Tick(), NOW + timedelta(days=1))
    return life


def issuing() -> Lifecycle:
    life = approved()
    life.begin_issue(NOW)
    return life


def revoking(break_glass: bool = False, failed: int = 0) -> Lifecycle:
    life = active() if not break_glass else awaiting(break_glass=True)
    if break_glass:
        life.begin_issue(NOW)
        life.handle(Issued(ISSUED), NOW)
    life.ended = life.grant.end_reason = "expired"
    life.begin_revocation()
    for _ in range(failed):
        life.handle(RevokeAttempted(error="vault down"), NOW)
    return life


CREDENTIAL = IssuedCredential(provider="vault_token", grant_id="g-1", reference="acc-1")
ISSUED = IssueResult(credential=CREDENTIAL, verified=True, verification="live")
GONE = RevocationResult(confirmed=True, verification="gone")


# -- the table ----------------------------------------------------------------------------------
def kinds(effects: list[Effect]) -> list[str]:
    """An event by its type, a notification by its kind, any other effect by its class name."""

    def name(e: Effect) -> str:
        match e:
            case Emit():
                return e.event.TYPE
            case Notify():
                return "notify:" + e.notification.kind.value
        return type(e).__name__

    return [name(e) for e in effects]


@dataclass(frozen=True)
class Row:
    name: str
    start: Callable[[], Lifecycle]
    message: Message
    after: timedelta  # when the message arrives, after NOW
    state: S | None  # the grant's state after it (None: a refusal)
    effects: tuple[str, ...] = ()
    refusal: str | None = None  # the refusal's rule


def bad(msg: Message, rule: str) -> tuple[Message, timedelta, None, tuple[str, ...], str]:
    return msg, timedelta(0), None, (), rule


DRIFT = Finding(
    kind=FindingKind.drift, provider="vault_token", grant_id="g-1", detail="gone", remedy=Remedy.signal_grant
)
BOB_SAYS = ActionInput(actor=BOB, comment="ok")
TABLE = [
    # awaiting approval: votes, refusals, and the approval schedule
    Row("approve", awaiting, Approve(BOB_SAYS), 0 * MIN, S.approved, ("approval.granted", "grant.approved")),
    Row("deny", awaiting, Deny(BOB_SAYS), 0 * MIN, S.denied, ("approval.denied",)),
    Row("self-approval", awaiting, *bad(Approve(ActionInput(actor=ALICE)), "self_approval")),
    Row("not an approver", awaiting, *bad(Approve(ActionInput(actor=MALLORY)), "not_an_approver")),
    Row("cancel by requester", awaiting, Revoke(ActionInput(actor=ALICE)), 0 * MIN, S.cancelled, ("grant.cancelled",)),
    Row("revoke by a stranger", awaiting, *bad(Revoke(ActionInput(actor=MALLORY)), "not_allowed_to_revoke")),
    Row("extend before issue", awaiting, *bad(Extend(extension()), "wrong_state")),
    Row(
        "review before issue", awaiting, *bad(SubmitReview(ReviewInput(actor=BOB, outcome="justified")), "wrong_state")
    ),
    Row("claim before issue", awaiting, *bad(Claim(ActionInput(actor=ALICE)), "wrong_state")),
    Row("nothing due yet", awaiting, Tick(), 5 * MIN, S.awaiting_approval, ("Flush",)),
    Row(
        "reminder",
        awaiting,
        Tick(),
        10 * MIN,
        S.awaiting_approval,
        ("approval.reminder", "notify:approval_reminder", "Flush"),
    ),
    Row(
        "escalation (with the reminder missed)",
        awaiting,
        Tick(),
        30 * MIN,
        S.awaiting_approval,
        ("approval.escalated", "notify:approval_escalated", "approval.reminder", "notify:approval_reminder", "Flush"),
    ),
    Row(
        "deadline: no reminder",
        awaiting,
        Tick(),
        60 * MIN,
        S.awaiting_approval,
        ("approval.escalated", "notify:approval_escalated", "Flush"),
    ),
    Row("drift while awaiting: ignored", awaiting, ReportDrift(DRIFT), 0 * MIN, S.awaiting_approval),
    # approved, not issued yet
    Row(
        "revoke before issue",
        approved,
        Revoke(ActionInput(actor=ALICE)),
        0 * MIN,
        S.approved,
        ("grant.revoke_requested",),
    ),
    Row(
        "parent revoke", approved, ParentRevoke(PARENT, "offboarded"), 0 * MIN, S.approved, ("grant.revoke_requested",)
    ),
    Row("approve again", approved, *bad(Approve(ActionInput(actor=CAROL)), "wrong_state")),
    Row("tick after the decision: nothing", approved, Tick(), 0 * MIN, S.approved),
    # active: extension, claims, revocation and the expiry schedule
    Row("extend", active, Extend(extension()), 0 * MIN, S.active, ("extension.requested", "notify:approval_requested")),
    Row("extend by another", active, *bad(Extend(extension(requester=BOB)), "not_requester")),
    Row("extend twice", extension_pending, *bad(Extend(extension()), "extension_pending")),
    Row(
        "approve extension",
        extension_pending,
        Approve(BOB_SAYS),
        0 * MIN,
        S.active,
        ("approval.granted", "extension.approved"),
    ),
    Row(
        "refuse extension",
        extension_pending,
        Deny(BOB_SAYS),
        0 * MIN,
        S.active,
        ("extension.refused", "notify:extended"),
    ),
    Row("extension approved: apply", extension_approved, Tick(), 0 * MIN, S.active, ("ApplyExtension",)),
    Row(
        "extension applied",
        extension_approved,
        ExtensionApplied(IssuedCredential(provider="vault_token", grant_id="g-1", reference="acc-1")),
        0 * MIN,
        S.active,
        ("extension.applied", "notify:extended", "Flush"),
    ),
    Row(
        "extension failed",
        extension_approved,
        ExtensionFailed("boom"),
        0 * MIN,
        S.active,
        ("extension.failed", "notify:extended", "Flush"),
    ),
    Row(
        "extension expires undecided",
        extension_pending,
        Tick(),
        60 * MIN,
        S.active,
        ("extension.expired", "notify:extended", "Flush", "grant.expired"),
    ),
    Row("expiry warning", active, Tick(), 25 * MIN, S.active, ("notify:expiry_warning",)),
    Row("expiry", active, Tick(), 30 * MIN, S.active, ("grant.expired",)),
    Row("revoke", active, Revoke(ActionInput(actor=BOB)), 0 * MIN, S.active, ("grant.revoke_requested",)),
    Row("revoke by admin", active, Revoke(ActionInput(actor=ERIN)), 0 * MIN, S.active, ("grant.revoke_requested",)),
    Row("claim", active, Claim(ActionInput(actor=ALICE)), 0 * MIN, S.active, ("credential.delivered", "Flush")),
    Row("claim by another", active, *bad(Claim(ActionInput(actor=BOB)), "not_requester")),
    Row("claim too late", active, Claim(ActionInput(actor=ALICE)), 6 * MIN, None, (), "handover_expired"),
    Row("drift", active, ReportDrift(DRIFT), 0 * MIN, S.active, ("reconciliation.drift_detected", "Flush")),
    Row("approve with nothing pending", active, *bad(Approve(BOB_SAYS), "wrong_state")),
    # break-glass review
    Row(
        "review",
        in_review,
        SubmitReview(ReviewInput(actor=BOB, outcome="justified")),
        0 * MIN,
        S.reviewed,
        ("review.completed",),
    ),
    Row(
        "review: not justified",
        in_review,
        SubmitReview(ReviewInput(actor=BOB, outcome="not_justified", notes="no incident")),
        0 * MIN,
        S.reviewed,
        ("review.completed", "review.finding"),
    ),
    Row("self-review", in_review, *bad(SubmitReview(ReviewInput(actor=ALICE, outcome="justified")), "self_review")),
    Row(
        "review without notes",
        in_review,
        *bad(SubmitReview(ReviewInput(actor=BOB, outcome="not_justified")), "notes_required"),
    ),
    Row(
        "reviewer outside the groups",
        in_review,
        *bad(SubmitReview(ReviewInput(actor=GRACE, outcome="justified")), "not_a_reviewer"),
    ),
    Row(
        "escalated reviewer",
        review_overdue,
        SubmitReview(ReviewInput(actor=GRACE, outcome="justified")),
        0 * MIN,
        S.reviewed,
        ("review.completed",),
    ),
    Row(
        "review reminder",
        in_review,
        Tick(),
        6 * 60 * MIN,
        S.pending_review,
        ("review.reminder", "notify:review_requested", "Flush"),
    ),
    Row(
        "review overdue",
        in_review,
        Tick(),
        24 * 60 * MIN,
        S.pending_review,
        ("review.overdue", "notify:review_overdue", "review.reminder", "notify:review_requested", "Flush"),
    ),
    Row("revoke after revocation", in_review, *bad(Revoke(ActionInput(actor=ALICE)), "wrong_state")),
    # provider outcomes: issue, clean-up, revocation
    Row(
        "issued and verified",
        issuing,
        Issued(ISSUED),
        0 * MIN,
        S.active,
        ("credential.issued", "fulfilment.verified", "Flush", "TellParent", "notify:issued"),
    ),
    Row(
        "issued, read-back fails",
        issuing,
        Issued(ISSUED.model_copy(update={"verified": False})),
        0 * MIN,
        S.issuing,
        ("credential.issued", "fulfilment.verification_failed", "CleanUp"),
    ),
    Row("issue failed", issuing, IssueFailed("vault down"), 0 * MIN, S.issuing, ("credential.issue_failed", "CleanUp")),
    Row("cleaned up", issuing, CleanedUp(GONE), 0 * MIN, S.issue_failed, ("credential.cleanup_confirmed", "End")),
    Row(
        "issuer refuses",
        issuing,
        IssueRefused("no_votes", "no"),
        0 * MIN,
        S.denied,
        ("credential.issue_refused", "End"),
    ),
    Row(
        "revoked",
        revoking,
        RevokeAttempted(GONE),
        0 * MIN,
        S.revoked,
        ("revocation.confirmed", "notify:revoked", "End"),
    ),
    Row(
        "revoked, another grant still holds it",
        revoking,
        RevokeAttempted(RevocationResult(confirmed=False, verification="held", deferred_to=["g-2"])),
        0 * MIN,
        S.revoked,
        ("revocation.deferred", "notify:revoked", "End"),
    ),
    Row(
        "revocation fails: retry",
        revoking,
        RevokeAttempted(error="vault down"),
        0 * MIN,
        S.revoking,
        ("revocation.retrying", "Flush", "Sleep", "ContinueAsNewIfLong", "RevokeCredential"),
    ),
    Row(
        "revocation keeps failing: alert",
        lambda: revoking(failed=2),
        RevokeAttempted(RevocationResult(confirmed=False, verification="still live")),
        0 * MIN,
        S.revocation_failing,
        ("revocation.retrying", "revocation.failing", "Flush", "Sleep", "ContinueAsNewIfLong", "RevokeCredential"),
    ),
    Row(
        "break-glass revoked: review",
        lambda: revoking(break_glass=True),
        RevokeAttempted(GONE),
        0 * MIN,
        S.pending_review,
        ("revocation.confirmed", "notify:revoked", "review.requested", "notify:review_requested", "Flush"),
    ),
]


@pytest.mark.parametrize("row", TABLE, ids=[r.name for r in TABLE])
def test_lifecycle_table(row: Row) -> None:
    life = row.start()
    now = NOW + row.after
    if row.refusal is not None:
        assert not isinstance(row.message, Tick | ExtensionApplied | ExtensionFailed)
        with pytest.raises(Refusal) as checked:  # the update validator's answer
            life.check(row.message, now)
        with pytest.raises(Refusal) as handled:  # and the handler's, should a validator be skipped
            life.handle(row.message, now)
        assert checked.value.rule == handled.value.rule == row.refusal
        return
    effects = life.handle(row.message, now)
    assert kinds(effects) == list(row.effects)
    assert life.grant.state is row.state


# -- the schedule ----------------------------------------------------------------------------------
def test_approval_schedule_wakes_for_reminders_escalation_and_deadline() -> None:
    life = awaiting()
    assert life.next_wake(NOW) == NOW + 10 * MIN
    assert life.due(NOW + 10 * MIN) == {Timer.approval_reminder}
    life.handle(Tick(), NOW + 10 * MIN)
    assert life.next_wake(NOW + 10 * MIN) == NOW + 20 * MIN
    life.handle(Tick(), NOW + 20 * MIN)
    assert life.next_wake(NOW + 20 * MIN) == NOW + 25 * MIN  # the escalation
    life.handle(Tick(), NOW + 25 * MIN)
    assert life.grant.approval is not None and life.grant.approval.escalated
    assert not life.settled(NOW + 59 * MIN) and life.settled(NOW + 60 * MIN)
    assert life.grant.approval.escalated and "security-leads" in life.grant.approval.groups_for(
        life.grant.approval.stages[0]
    )


def test_a_decision_settles_the_approval_wait_and_tells_the_requester() -> None:
    life = awaiting()
    life.handle(Approve(BOB_SAYS), NOW)
    assert life.should_wake() and life.settled(NOW)
    assert kinds(life.approval_outcome()) == ["notify:approved"]
    expired = awaiting()
    assert kinds(expired.approval_outcome()) == ["approval.expired", "notify:denied"]


def test_active_schedule_warns_then_expires_and_an_extension_rearms_the_warning() -> None:
    life = extension_approved()
    assert life.should_wake()
    assert life.arm(NOW) == NOW + 25 * MIN and not life.woken
    life.handle(Tick(), NOW)
    life.handle(ExtensionApplied(IssuedCredential(provider="vault_token", grant_id="g-1", reference="a")), NOW)
    assert life.grant.extension is not None and life.grant.extension.status is X.applied
    assert life.grant.expires_at == NOW + 45 * MIN and life.grant.duration_seconds == 45 * 60
    assert life.arm(NOW + MIN) == NOW + 40 * MIN  # the warning, again
    life.handle(Tick(), NOW + 45 * MIN)
    assert life.ended == "expired" and life.settled(NOW + 45 * MIN)


def test_a_timer_ends_ahead_of_its_deadline_then_at_it_and_an_early_wake_does_nothing() -> None:
    deadline = NOW + 25 * MIN
    assert timer_end(deadline, NOW) == deadline - ARM_AHEAD
    assert timer_end(deadline, deadline - ARM_AHEAD) == deadline  # the remainder: one short timer
    near = deadline - TWO_STEPS_BEYOND
    assert timer_end(deadline, near) == deadline  # near: one timer (a second step would share its load)
    assert timer_end(deadline, near - timedelta(seconds=1)) == deadline - ARM_AHEAD
    assert timer_end(deadline, deadline + MIN) == deadline and timer_end(None, NOW) is None
    life = active()
    before = life.grant.model_copy(deep=True)
    assert life.handle(Tick(), life.arm(NOW) - ARM_AHEAD) == []  # woken ahead: nothing is due yet
    assert not life.settled(NOW) and life.grant == before


def test_revoke_ends_the_active_wait_with_its_reason() -> None:
    life = active()
    life.handle(Revoke(ActionInput(actor=BOB, comment="done")), NOW)
    assert life.should_wake()
    assert life.handle(Tick(), NOW) == [] and life.ended == "revoked early by bob: done"
    assert life.handle(Revoke(ActionInput(actor=ALICE)), NOW) == []  # asked already


def test_review_sub_states() -> None:
    life = revoked()
    assert life.grant.review_status is ReviewStatus.none
    life.open_review(NOW)
    assert life.grant.review_status is ReviewStatus.pending
    assert life.next_wake(NOW) == NOW + timedelta(hours=6)
    life.handle(Tick(), NOW + timedelta(days=1))
    assert life.grant.review_status is ReviewStatus.overdue
    life.handle(SubmitReview(ReviewInput(actor=GRACE, outcome="justified")), NOW + timedelta(days=1))
    assert life.grant.review_status is ReviewStatus.done and life.settled(NOW)


def test_terminal_states_are_the_ones_without_a_way_out() -> None:
    assert S.revoked not in TERMINAL  # a break-glass grant's review follows revocation
    assert TERMINAL == {S.denied, S.approval_expired, S.cancelled, S.issue_failed, S.reviewed}
    assert all(not TRANSITIONS.get(s) for s in TERMINAL)
    assert not (ACCESS_ENDED & HOLDS_ACCESS) and S.revoked in ACCESS_ENDED


# -- the steps between the waits ----------------------------------------------------------------
def started(
    entitlement_request: AccessRequest, requester: Principal = ALICE, forged: bool = False
) -> tuple[Lifecycle, list[Effect]]:
    decision = evaluate(CATALOGUE, requester, entitlement_request)
    inp = GrantInput(grant_id="g-1", requester=requester, request=entitlement_request, decision=decision)
    life = Lifecycle(Grant.from_input(inp), OPTIONS)
    forgery = Refusal(RefusalKind.forbidden, "unsigned", "not signed") if forged else None
    return life, life.start(inp, forgery, NOW)


APPROVAL = ("grant.requested", "policy.decided", "approval.requested", "notify:approval_requested", "Flush")


@pytest.mark.parametrize(
    "request_, requester, forged, state, effects",
    [
        (AccessRequest(entitlement="db", reason="fix"), ALICE, False, S.awaiting_approval, APPROVAL),
        (
            AccessRequest(entitlement="db", reason="fix", break_glass=True, incident="INC-7"),
            ALICE,
            False,
            S.issuing,
            ("grant.requested", "policy.decided", "grant.approved", "notify:break_glass_alert", "IssueCredential"),
        ),
        (
            AccessRequest(entitlement="db", reason="fix"),
            MALLORY,
            False,
            S.denied,
            ("grant.requested", "policy.decided", "End"),
        ),
        (
            AccessRequest(entitlement="db", reason="fix"),
            ALICE,
            True,
            S.denied,
            ("grant.requested", "policy.decided", "End"),
        ),
    ],
    ids=["needs approval", "break-glass", "policy denies", "forged start"],
)
def test_start_decides_by_policy(request_, requester, forged, state, effects) -> None:
    life, out = started(request_, requester, forged)
    assert kinds(out) == list(effects)
    assert life.grant.state is state and life.finished == (state is S.denied)


def denied_by_bob() -> Lifecycle:
    life = awaiting()
    life.handle(Deny(BOB_SAYS), NOW)
    return life


def revoked_while_approved() -> Lifecycle:
    life = approved()
    life.handle(Revoke(ActionInput(actor=ALICE, comment="not needed")), NOW)
    return life


@pytest.mark.parametrize(
    "start, state, effects",
    [
        (approved, S.issuing, ("notify:approved", "IssueCredential")),
        (awaiting, S.approval_expired, ("approval.expired", "notify:denied", "End")),
        (denied_by_bob, S.denied, ("notify:denied", "End")),
        (revoked_while_approved, S.cancelled, ("notify:approved", "grant.cancelled", "End")),
    ],
    ids=["approved: issue", "expired", "denied", "revoked before issue"],
)
def test_after_the_approval_wait(start, state, effects) -> None:
    life = start()
    assert kinds(life.after_wait(NOW + 60 * MIN)) == list(effects)
    assert life.grant.state is state
