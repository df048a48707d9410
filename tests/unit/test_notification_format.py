"""The notification model and its two wire formats (generic webhook, Slack)."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError

from jitaccess.activities.notify import notifier_routes, route_table
from jitaccess.config.settings import NotifierConfig, Settings
from jitaccess.domain import event_types as ev
from jitaccess.domain.notifications import (
    HIGH_MARK,
    Audience,
    DeliveryResult,
    Notification,
    NotificationKind,
    Severity,
    format_body,
    grant_links,
    slack_body,
    webhook_body,
)

PUBLIC = "https://jit.example.com/"
GID = "grant-01JABC"


def approval_requested(**over) -> Notification:
    fields = dict(
        grant_id=GID,
        kind=NotificationKind.approval_requested,
        audience=Audience.approvers,
        recipients=["security"],
        title="alice requests secrets-admin",
        summary={
            "entitlement": "secrets-admin",
            "requester": "alice",
            "state": "awaiting_approval",
            "reason": "rotate key",
            "ticket": "CHG-7",
            "expires_at": None,
            "duration": "PT30M",
        },
        links=grant_links(GID, Audience.approvers),
    )
    fields.update(over)
    return Notification(**fields)


def texts(obj) -> list[str]:
    """Every string leaf of a JSON-like value."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in texts(v)]
    if isinstance(obj, list):
        return [t for v in obj for t in texts(v)]
    return []


# --- model ------------------------------------------------------------------------------


def test_grant_links_per_audience():
    # the web console's grant page (where deciding needs sign-in and a CSRF-checked form), never an API action
    assert grant_links(GID, "approvers") == {"decide": f"/grants/{GID}#decide"}
    assert grant_links(GID, Audience.reviewers) == {"review": f"/grants/{GID}#review"}
    assert grant_links(GID, Audience.requester) == {"open": f"/grants/{GID}"}
    assert grant_links(GID, Audience.security) == {"open": f"/grants/{GID}"}


def test_notification_refuses_unknown_fields_and_secret_summary_keys():
    with pytest.raises(ValidationError, match="Extra inputs"):
        approval_requested(wrapping_token="hvs.x")
    for key in ("token", "wrapping_token", "client_secret", "Password", "vault_accessor"):
        with pytest.raises(ValidationError, match="secret material"):
            approval_requested(summary={key: "x"})
    with pytest.raises(ValidationError):
        approval_requested(summary={"nested": {"token": "x"}})  # scalars only
    with pytest.raises(ValidationError, match="starting with '/'"):
        approval_requested(links={"approve": "https://evil.example/approve"})
    with pytest.raises(ValidationError):
        approval_requested(kind="not_a_kind")


def test_delivery_result_event():
    ok = DeliveryResult(notifier="hook", ok=True, status_code=200, attempt=1)
    bad = DeliveryResult(notifier="hook", ok=False, status_code=503, error="HTTP 503", attempt=2)
    assert ok.event().TYPE == "notification.sent" and bad.event().TYPE == "notification.failed"
    assert bad.event(approval_requested()).data() == {
        "notifier": "hook",
        "attempt": 2,
        "status_code": 503,
        "error": "HTTP 503",
        "kind": "approval_requested",
        "audience": "approvers",
        "severity": "info",
    }


# --- generic webhook --------------------------------------------------------------------


def test_webhook_body_is_exactly_the_notification_with_absolute_links():
    n = approval_requested()
    assert webhook_body(n, PUBLIC) == {
        "type": "jitaccess.notification",
        "version": 1,
        "grant_id": GID,
        "kind": "approval_requested",
        "audience": "approvers",
        "severity": "info",
        "recipients": ["security"],
        "title": "alice requests secrets-admin",
        "summary": n.summary,
        "links": {"decide": f"https://jit.example.com/grants/{GID}#decide"},
        "url": f"https://jit.example.com/grants/{GID}#decide",
    }
    json.dumps(webhook_body(n, PUBLIC))  # serialisable as is


def test_webhook_without_public_url_keeps_paths():
    assert webhook_body(approval_requested(), None)["links"]["decide"] == f"/grants/{GID}#decide"


def test_webhook_marks_high_severity():
    n = approval_requested(kind="break_glass_alert", audience="security", severity="high", links={})
    body = webhook_body(n, PUBLIC)
    assert body["severity"] == "high" and body["kind"] == "break_glass_alert" and body["links"] == {}


# --- Slack ------------------------------------------------------------------------------


def test_slack_body_has_text_and_blocks_with_summary():
    body = slack_body(approval_requested(), PUBLIC)
    assert set(body) == {"text", "blocks"}
    assert GID in body["text"] and "alice requests secrets-admin" in body["text"]
    types = [b["type"] for b in body["blocks"]]
    assert types == ["header", "section", "actions", "context"]
    header, section = body["blocks"][0], body["blocks"][1]
    assert header["text"] == {"type": "plain_text", "text": "alice requests secrets-admin", "emoji": True}
    fields = [f["text"] for f in section["fields"]]
    # shown in a fixed order; a None value (expires_at) is left out
    assert fields == [
        "*Entitlement*\nsecrets-admin",
        "*Requester*\nalice",
        "*State*\nawaiting_approval",
        "*Reason*\nrotate key",
        "*Ticket*\nCHG-7",
        "*Duration*\nPT30M",
    ]
    assert "security" in body["blocks"][-1]["elements"][0]["text"]


def test_slack_approver_message_opens_the_console_grant_page():
    actions = slack_body(approval_requested(), PUBLIC)["blocks"][2]
    (button,) = actions["elements"]  # one button: the page; approving there needs sign-in, never a click alone
    assert button["action_id"] == "jitaccess-decide"
    assert button["url"] == f"https://jit.example.com/grants/{GID}#decide"
    assert button["text"]["text"] == "Open to approve or deny" and button["style"] == "primary"
    assert "/v1/" not in json.dumps(actions)


def test_slack_without_public_url_shows_paths_not_buttons():
    blocks = slack_body(approval_requested(), None)["blocks"]
    assert "actions" not in [b["type"] for b in blocks]  # Slack refuses relative button URLs
    assert f"`/grants/{GID}#decide`" in blocks[2]["text"]["text"]


def test_slack_requester_message_has_no_approve_link():
    n = approval_requested(
        kind="approved",
        audience="requester",
        recipients=["alice"],
        title="secrets-admin approved",
        links=grant_links(GID, "requester"),
    )
    dumped = json.dumps(slack_body(n, PUBLIC))
    assert "#decide" not in dumped and f"/grants/{GID}" in dumped


def test_slack_high_severity_is_visibly_marked():
    n = approval_requested(
        kind="break_glass_alert",
        audience="security",
        severity=Severity.high,
        title="BREAK-GLASS: alice took secrets-admin",
        summary={"incident": "INC-9"},
    )
    body = slack_body(n, PUBLIC)
    assert body["text"].startswith("[HIGH] ")
    assert body["blocks"][0]["text"]["text"].startswith(HIGH_MARK)
    assert "*HIGH severity*" in body["blocks"][-1]["elements"][0]["text"]
    low = slack_body(approval_requested(), PUBLIC)
    assert "HIGH" not in json.dumps(low)


def test_slack_escapes_user_text():
    n = approval_requested(title="<!channel> please", summary={"reason": "a <https://evil|click> & b"})
    body = slack_body(n, PUBLIC)
    mrkdwn = [body["text"]] + _mrkdwn(body["blocks"])  # Slack parses links/mentions in these
    assert mrkdwn and not any("<!channel>" in t or "<https://evil" in t for t in mrkdwn)
    assert body["blocks"][0]["text"] == {
        "type": "plain_text",
        "text": "<!channel> please",
        "emoji": True,
    }  # shown literally
    assert "&lt;!channel&gt;" in body["text"]
    assert body["blocks"][1]["fields"][0]["text"] == "*Reason*\na &lt;https://evil|click&gt; &amp; b"


def _mrkdwn(obj) -> list[str]:
    if isinstance(obj, dict):
        own = [obj["text"]] if obj.get("type") == "mrkdwn" else []
        return own + [t for v in obj.values() for t in _mrkdwn(v)]
    if isinstance(obj, list):
        return [t for v in obj for t in _mrkdwn(v)]
    return []


def test_slack_respects_block_kit_limits():
    summary = {f"k{i:02}": "v" * 5000 for i in range(15)}
    n = approval_requested(title="t" * 400, summary=summary)
    body = slack_body(n, PUBLIC)
    assert len(body["blocks"][0]["text"]["text"]) <= 150
    fields = body["blocks"][1]["fields"]
    assert len(fields) == 10 and all(len(f["text"]) <= 2000 for f in fields)
    assert len(body["text"]) <= 3000


# --- both formats use only what they are given ------------------------------------------

_FORMAT_VOCABULARY = {  # words the formatters add themselves
    "jitaccess",
    "url",  # the webhook's console page
    "open",  # button texts: "Open to approve or deny", "Open to review", "Open in jitaccess"
    "approve",
    "or",
    "deny",
    "review",
    "in",
    "notification",
    "type",
    "version",
    "grant",
    "to",
    "high",
    "severity",
    "rotating",
    "light",
    "https",
    "jit",
    "example",
    "com",
    "v1",
    "grants",
    "plain",
    "text",
    "mrkdwn",
    "header",
    "section",
    "actions",
    "context",
    "button",
    "primary",
    "danger",
    "yes",
    "no",
    "1",
    "blocks",
    "emoji",
    "fields",
    "elements",
    "action",
    "id",
    "style",  # Slack's own keys
}


def _words(s: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z0-9]+", s)}


@pytest.mark.parametrize("fmt", ["webhook", "slack"])
@pytest.mark.parametrize("audience", list(Audience))
def test_formatters_use_only_the_notification_and_public_url(fmt, audience):
    n = Notification(
        grant_id="grant-zq1",
        kind="expiry_warning",
        audience=audience,
        severity="high",
        recipients=["usr7"],
        title="Expiring soon",
        summary={"entitlement": "ent9", "expires_at": "2030-01-01T00:00:00Z", "approvals": 2, "break_glass": True},
        links=grant_links("grant-zq1", audience),
    )
    body = format_body(fmt, n, PUBLIC)
    allowed = _words(n.model_dump_json()) | _FORMAT_VOCABULARY
    produced = set().union(*(_words(t) for t in texts(body)), *(_words(k) for k in _keys(body)))
    assert produced - allowed == set()
    assert format_body(fmt, n, PUBLIC) == body  # pure: same input, same output


def _keys(obj) -> list[str]:
    if isinstance(obj, dict):
        return [k for k in obj] + [k for v in obj.values() for k in _keys(v)]
    if isinstance(obj, list):
        return [k for v in obj for k in _keys(v)]
    return []


def test_unknown_format_is_an_error():
    with pytest.raises(ValueError, match="unknown notifier format"):
        format_body("teams", approval_requested())


# --- configuration and routing ----------------------------------------------------------


def test_notifiers_from_env_json(monkeypatch):
    monkeypatch.setenv(
        "JITACCESS_NOTIFIERS",
        json.dumps(
            [
                {
                    "name": "sec-slack",
                    "format": "slack",
                    "url": "https://hooks.slack.example/T/B/x",
                    "audiences": ["approvers", "security"],
                },
                {"name": "audit", "url": "http://127.0.0.1:9/hook", "timeout": 2},
            ]
        ),
    )
    monkeypatch.setenv("JITACCESS_PUBLIC_URL", "https://jit.example.com")
    s = Settings()
    assert s.public_url == "https://jit.example.com"
    slack, audit = s.notifiers
    assert slack.format == "slack" and slack.timeout == 5 and "hooks" not in repr(slack)  # url is secret
    assert audit.format == "webhook" and audit.audiences == list(Audience) and audit.timeout == 2
    assert notifier_routes(s.notifiers, "approvers") == ["sec-slack", "audit"]
    assert notifier_routes(s.notifiers, Audience.requester) == ["audit"]
    assert route_table(s.notifiers) == {
        "approvers": ["sec-slack", "audit"],
        "requester": ["audit"],
        "security": ["sec-slack", "audit"],
        "reviewers": ["audit"],
    }


def test_notifier_config_is_validated():
    with pytest.raises(ValidationError):
        NotifierConfig(name="x", url="ftp://host/x")
    with pytest.raises(ValidationError):
        NotifierConfig(name="x", url="https://h/x", format="teams")
    with pytest.raises(ValidationError):
        NotifierConfig(name="x", url="https://h/x", audiences=["everyone"])
    with pytest.raises(ValidationError, match="unique"):
        Settings(notifiers=[{"name": "a", "url": "https://h/1"}, {"name": "a", "url": "https://h/2"}])


# -- notifications derived from events (jitaccess.domain.notification_rules) ------------------


def _grant_awaiting_approval():
    from tests.unit.test_grant_rules import new_grant

    return new_grant("one-approver")


def test_an_approval_request_asks_the_open_stage_groups():
    from jitaccess.domain.event_types import ApprovalRequested
    from jitaccess.domain.notification_rules import notifications_for

    g = _grant_awaiting_approval()
    [n] = notifications_for(ApprovalRequested(deadline="2025-03-01T16:00:00+00:00"), g)
    assert (n.kind, n.audience, n.severity) == ("approval_requested", "approvers", "info")
    assert n.title == "alice requests one-approver" and n.recipients == ["security"]
    assert n.links == {"decide": f"/grants/{g.grant_id}#decide"}
    assert n.summary["state"] == "awaiting_approval" and n.summary["duration"] == "1800s"


def test_events_that_tell_the_requester():
    from jitaccess.domain.event_types import ApprovalDenied, ApprovalExpired, ExtensionFailed, GrantApproved
    from jitaccess.domain.notification_rules import notifications_for

    g = _grant_awaiting_approval()
    titles = [
        (ApprovalExpired(), "Your request for one-approver expired without a decision"),
        (ApprovalDenied(reason="no"), "Your request for one-approver was denied"),
        (GrantApproved(rule="r", approvers=["bob"], auto_approved=False), "Your request for one-approver was approved"),
        (ExtensionFailed(error="e", expires_at="T"), "Extending one-approver failed; it still ends at T"),
    ]
    for event, title in titles:
        [n] = notifications_for(event, g)
        assert (n.audience, n.recipients, n.title) == ("requester", ["alice"], title)


def test_break_glass_alerts_security_and_most_events_tell_nobody():
    from jitaccess.domain.event_types import GrantApproved, GrantExpired
    from jitaccess.domain.notification_rules import notifications_for

    g = _grant_awaiting_approval().model_copy(update={"incident": "INC-7"})
    [n] = notifications_for(GrantApproved(rule="r", break_glass=True, incident="INC-7"), g)
    assert (n.kind, n.audience, n.severity) == ("break_glass_alert", "security", "high")
    assert n.title == "BREAK-GLASS: alice took one-approver (INC-7)"
    assert notifications_for(GrantApproved(rule="r", auto_approved=True, auto_rule="always"), g) == []
    assert notifications_for(GrantExpired(expires_at="T"), g) == []


def _active_break_glass_grant():
    from datetime import UTC, datetime, timedelta

    from jitaccess.domain.catalogue import BreakGlass
    from jitaccess.domain.states import GrantState

    g = _grant_awaiting_approval()
    assert g.decision.entitlement is not None
    bg = BreakGlass(groups=("oncall",), max_duration=timedelta(hours=1), reviewer_groups=("security",))
    ent = g.decision.entitlement.model_copy(update={"break_glass": bg})
    expires = datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
    update = {"decision": g.decision.model_copy(update={"entitlement": ent}), "incident": "INC-7"}
    return g.model_copy(update={**update, "state": GrantState.active, "expires_at": expires, "end_reason": "expired"})


T = "2025-03-01T13:00:00+00:00"


@pytest.mark.parametrize(
    ("event", "kind", "audience", "title", "recipients"),
    [
        (ev.FulfilmentVerified(read_back="ok"), "issued", "requester", f"one-approver is active until {T}", ["alice"]),
        (
            ev.RevocationConfirmed(attempts=1, reference="r", already_gone=False, read_back="gone"),
            "revoked",
            "requester",
            "one-approver was revoked (expired)",
            ["alice"],
        ),
        (
            ev.RevocationDeferred(held_by=["g2"], reference="r", read_back="held"),
            "revoked",
            "requester",
            "one-approver was revoked (expired)",
            ["alice"],
        ),
        (
            ev.ExtensionRefused(reason="no need"),
            "extended",
            "requester",
            "Your extension of one-approver was refused: no need",
            ["alice"],
        ),
        (
            ev.ExtensionExpired(deadline="D"),
            "extended",
            "requester",
            f"Your extension of one-approver expired undecided; the grant still ends at {T}",
            ["alice"],
        ),
        (
            ev.ExtensionApplied(added_seconds=60, total_seconds=1860, expires_at="E"),
            "extended",
            "requester",
            "one-approver extended until E",
            ["alice"],
        ),
        (
            ev.ReviewRequested(deadline="D", reviewer_groups=["security"], incident="INC-7"),
            "review_requested",
            "reviewers",
            "Review break-glass use of one-approver by alice (INC-7)",
            ["security"],
        ),
        (
            ev.ReviewReminder(deadline="D"),
            "review_requested",
            "reviewers",
            "Reminder: review break-glass use of one-approver by alice",
            ["security"],
        ),
        (
            ev.ApprovalEscalated(escalation_groups=["security-leads"], pending=[]),
            "approval_escalated",
            "approvers",
            "Escalated: alice's request for one-approver is still pending",
            ["security-leads"],
        ),
        (
            ev.ReviewOverdue(deadline="D", escalation_groups=["security-leads"]),
            "review_overdue",
            "reviewers",
            "OVERDUE review of break-glass use of one-approver by alice",
            ["security", "security-leads"],
        ),
    ],
)
def test_the_title_and_recipients_each_event_sends(event, kind, audience, title, recipients):
    from jitaccess.domain.notification_rules import notifications_for

    g = _active_break_glass_grant()
    [n] = notifications_for(event, g)
    assert (n.kind, n.audience, n.title, n.recipients) == (kind, audience, title, recipients)
    assert n.severity == ("high" if kind in ("approval_escalated", "review_overdue") else "info")
    assert n.summary["state"] == "active" and n.summary["expires_at"] == T


def test_the_expiry_warning_and_no_approver_notice_without_a_pending_round():
    from jitaccess.domain.notification_rules import expiry_warning, notifications_for

    g = _active_break_glass_grant()
    n = expiry_warning(g)
    assert (n.kind, n.audience, n.title) == ("expiry_warning", "requester", f"one-approver expires at {T}")
    assert notifications_for(ev.ApprovalReminder(pending=[]), g) == []  # an active grant asks nobody
