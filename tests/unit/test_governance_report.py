"""The governance report over a generated history whose answers are known by construction."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from jitaccess.cli import app
from jitaccess.domain.events import IdentityEvent, format_at, make_event
from jitaccess.domain.principals import SYSTEM_ACTOR, Actor, ActorKind, ActorRole
from jitaccess.evidence.report import analyse, percentile
from jitaccess.ledger import Ledger

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WORKER = Actor(id="jitaccess-worker", kind=ActorKind.service, role=ActorRole.executor)


def person(name: str, role: ActorRole) -> Actor:
    return Actor(id=name, kind=ActorKind.human, role=role)


def grant(n: int, start: datetime, steps: list[tuple[str, float, Actor, dict]]) -> list[IdentityEvent]:
    gid, prev, out = f"grant-{n:03d}", None, []
    for type_, offset, actor, data in steps:
        prev = make_event(gid, prev, type_, start + timedelta(seconds=offset), actor, data)
        out.append(prev)
    return out


def requested(who: str, ent: str, break_glass: bool = False) -> tuple[str, float, Actor, dict]:
    return ("grant.requested", 0, person(who, ActorRole.requester), {"entitlement": ent, "break_glass": break_glass})


def decided(outcome: str = "allow", codes: list[str] | None = None) -> tuple[str, float, Actor, dict]:
    return ("policy.decided", 0, SYSTEM_ACTOR, {"outcome": outcome, "reason_codes": codes or []})


def history() -> list[IdentityEvent]:
    evs: list[IdentityEvent] = []
    n = 0
    bob = person("bob", ActorRole.approver)
    # secrets-admin: five approvals taking 10, 20, 30, 40, 50 s (alice four times, dave once);
    # revocations on vault_token lagging 1, 2, 3 s behind expiry for the first three
    for i, latency in enumerate([10, 20, 30, 40, 50]):
        n += 1
        start = T0 + timedelta(hours=n)
        steps = [
            requested("alice" if i < 4 else "dave", "secrets-admin"),
            decided(),
            ("approval.requested", 0, SYSTEM_ACTOR, {}),
            ("approval.granted", latency, bob, {}),
            ("grant.approved", latency, SYSTEM_ACTOR, {"auto_approved": False}),
        ]
        if i < 3:
            expires = start + timedelta(minutes=10)
            steps += [
                ("credential.issued", latency + 1, WORKER, {"provider": "vault_token"}),
                ("grant.expired", 600.1, SYSTEM_ACTOR, {"expires_at": expires.isoformat()}),
                ("revocation.confirmed", 600 + i + 1, WORKER, {"read_back": "gone"}),
            ]
        evs += grant(n, start, steps)
    # aws_iam_group: an auto-approved grant revoked 5 s after its expiry (twice, by erin)
    for _ in range(2):
        n += 1
        start = T0 + timedelta(hours=n)
        evs += grant(
            n,
            start,
            [
                requested("erin", "aws-dev-group"),
                decided(),
                ("grant.approved", 0, SYSTEM_ACTOR, {"auto_approved": True}),
                ("credential.issued", 1, WORKER, {"provider": "aws_iam_group"}),
                ("grant.expired", 60, SYSTEM_ACTOR, {"expires_at": (start + timedelta(seconds=60)).isoformat()}),
                ("revocation.confirmed", 65, WORKER, {}),
            ],
        )
    # denials: by policy (two reason codes), by an approver; an approval that expired
    n += 1
    evs += grant(
        n,
        T0 + timedelta(hours=n),
        [requested("dave", "secrets-admin"), decided("deny", ["requester_not_eligible", "reason_required"])],
    )
    n += 1
    evs += grant(
        n,
        T0 + timedelta(hours=n),
        [requested("dave", "secrets-prod-write"), decided(), ("approval.denied", 30, bob, {"reason": "no"})],
    )
    n += 1
    evs += grant(
        n,
        T0 + timedelta(hours=n),
        [requested("dave", "secrets-prod-write"), decided(), ("approval.expired", 99, SYSTEM_ACTOR, {})],
    )
    # break-glass x3: reviewed on time (justified), reviewed late (not justified, overdue), unreviewed
    carol = person("carol", ActorRole.reviewer)
    for review in [("justified", 3600), ("not_justified", 90000), None]:
        n += 1
        start = T0 + timedelta(hours=n)
        deadline = start + timedelta(hours=24)
        steps = [
            requested("alice", "secrets-admin", break_glass=True),
            decided(),
            ("grant.approved", 0, SYSTEM_ACTOR, {"break_glass": True}),
            ("review.requested", 10, SYSTEM_ACTOR, {"deadline": deadline.isoformat()}),
        ]
        if review and review[1] > 86400:
            steps.append(("review.overdue", 86401, SYSTEM_ACTOR, {}))
        if review:
            steps.append(("review.completed", review[1], carol, {"outcome": review[0]}))
        evs += grant(n, start, steps)
    # before the window: ignored
    evs += grant(99, T0 - timedelta(days=2), [requested("alice", "secrets-admin"), decided()])
    # a delegation chain (no grant.requested): ignored
    evs.append(make_event("delegation-1", None, "delegation.granted", T0, person("carol", ActorRole.approver), {}))
    return evs


EXPECTED_OUTCOMES = {
    "approved": 5 + 2 + 3,
    "denied_by_policy": 1,
    "denied_by_approver": 1,
    "approval_expired": 1,
}


def check(rep: dict) -> None:
    assert rep["grants"] == 5 + 2 + 3 + 3
    assert rep["approval_latency_seconds"] == {"secrets-admin": {"count": 5, "p50": 30.0, "p90": 50.0, "max": 50.0}}
    assert rep["outcomes"] == EXPECTED_OUTCOMES
    assert rep["denial_reasons"] == {"requester_not_eligible": 1, "reason_required": 1, "approver": 1}
    bg = rep["break_glass"]
    assert bg["volume"] == 3 and bg["by_entitlement"] == {"secrets-admin": 3}
    assert bg["reviews"] == {
        "break_glass": 3,
        "reviewed": 2,
        "on_time": 1,
        "overdue": 1,
        "not_justified": 1,
        "pending": 1,
    }
    assert bg["review_compliance"] == round(1 / 3, 3)
    lag = rep["expiry_to_revocation_seconds"]
    assert lag["vault_token"] == {"count": 3, "p50": 2.0, "p90": 3.0, "max": 3.0}
    assert lag["aws_iam_group"] == {"count": 2, "p50": 5.0, "p90": 5.0, "max": 5.0}
    assert rep["recurring_requests"] == [{"requester": "alice", "entitlement": "secrets-admin", "requests": 7}]


def test_percentiles_are_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([5.0], 90) == 5.0
    assert [percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], p) for p in (50, 90, 100)] == [5, 9, 10]


def test_known_answers():
    rep = analyse(history(), since=format_at(T0), recurring_threshold=3)
    check(rep)
    assert analyse(history(), since=format_at(T0), recurring_threshold=2)["recurring_requests"][1:] == [
        {"requester": "dave", "entitlement": "secrets-admin", "requests": 2},
        {"requester": "dave", "entitlement": "secrets-prod-write", "requests": 2},
        {"requester": "erin", "entitlement": "aws-dev-group", "requests": 2},
    ]


def test_cli_report_reads_the_ledger(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    led = Ledger(url, upgrade=True)
    led.append(history())
    led.close()
    res = CliRunner().invoke(app, ["report", "--ledger", url, "--since", T0.isoformat(), "--json"])
    assert res.exit_code == 0, res.output
    check(json.loads(res.stdout))
    text = CliRunner().invoke(app, ["report", "--ledger", url, "--since", "2026-03-02"])
    assert text.exit_code == 0 and "alice asked for secrets-admin 7 times" in text.stdout
