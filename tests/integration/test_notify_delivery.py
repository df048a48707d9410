"""deliver_notification against a real local HTTP receiver: failures come back as
results (never raised), successes carry the formatted body, only an unknown
notifier is an error."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from jitaccess.activities.notify import UNKNOWN_NOTIFIER, NotificationActivities, route_table
from jitaccess.config.settings import NotifierConfig, Settings
from jitaccess.dev.servers import free_port
from jitaccess.domain.notifications import (
    Audience,
    DeliveryRequest,
    DeliveryResult,
    Notification,
    grant_links,
    slack_body,
    webhook_body,
)
from tests.http_receiver import HttpReceiver

PUBLIC = "https://jit.example.com"
GID = "grant-01JNOTIFY"


@pytest.fixture
def notification() -> Notification:
    return Notification(
        grant_id=GID,
        kind="approval_requested",
        audience=Audience.approvers,
        recipients=["security"],
        title="alice requests secrets-admin",
        summary={"entitlement": "secrets-admin", "requester": "alice", "reason": "rotate key", "ticket": "CHG-7"},
        links=grant_links(GID, Audience.approvers),
    )


@pytest.fixture
def receiver():
    rx = HttpReceiver(fail_first=2, fail_status=503)
    yield rx
    rx.close()


def run(acts: NotificationActivities, req: DeliveryRequest) -> DeliveryResult:
    return ActivityEnvironment().run(acts.deliver_notification, req)


def test_first_deliveries_fail_then_succeed_with_the_formatted_body(receiver, notification):
    acts = NotificationActivities([NotifierConfig(name="hook", url=receiver.url + "/hook")], public_url=PUBLIC)

    results = [
        run(
            acts,
            DeliveryRequest(
                notifier="hook", notification=notification, attempt=i, delivery_id=f"{GID}:approval_requested:hook"
            ),
        )
        for i in (1, 2, 3)
    ]

    for r, attempt in zip(results[:2], (1, 2)):
        assert r == DeliveryResult(notifier="hook", ok=False, status_code=503, error=r.error, attempt=attempt)
        assert r.error.startswith("HTTP 503") and r.event().TYPE == "notification.failed"
        assert receiver.url not in r.error
    assert results[2] == DeliveryResult(notifier="hook", ok=True, status_code=200, error=None, attempt=3)
    assert results[2].event().TYPE == "notification.sent"

    assert receiver.attempts == 3
    assert [r.status for r in receiver.received] == [503, 503, 200]
    last = receiver.delivered[0]
    assert last.path == "/hook" and last.method == "POST"
    assert last.body == webhook_body(notification, PUBLIC)
    assert last.body["links"]["decide"] == last.body["url"] == f"{PUBLIC}/grants/{GID}#decide"
    assert last.headers["Idempotency-Key"] == f"{GID}:approval_requested:hook"
    assert last.headers["X-Jitaccess-Grant-Id"] == GID
    assert last.headers["Content-Type"] == "application/json"


def test_unreachable_notifier_is_a_result_not_an_error(notification):
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    acts = NotificationActivities([NotifierConfig(name="dead", url=dead, timeout=2)])
    r = run(acts, DeliveryRequest(notifier="dead", notification=notification))
    assert r.ok is False and r.status_code is None and r.attempt == 1
    assert r.error and len(r.error) <= 200 and "\n" not in r.error
    assert dead not in r.error and "127.0.0.1" not in r.error  # the notifier URL is a secret


def test_slow_notifier_times_out(notification):
    with HttpReceiver(delay=1.0) as rx:
        acts = NotificationActivities([NotifierConfig(name="slow", url=rx.url, timeout=0.2)])
        r = run(acts, DeliveryRequest(notifier="slow", notification=notification))
        assert r.ok is False and r.status_code is None and r.error.startswith("timeout after 0.2s")
        assert rx.attempts == 1


def test_slack_format_is_posted(notification):
    with HttpReceiver() as rx:
        acts = NotificationActivities(
            [NotifierConfig(name="sec-slack", format="slack", url=rx.url + "/services/T0/B0/x")], public_url=PUBLIC
        )
        r = run(acts, DeliveryRequest(notifier="sec-slack", notification=notification))
        assert r.ok and r.status_code == 200
        (got,) = rx.wait_for(1)
        assert got.path == "/services/T0/B0/x"
        assert got.body == slack_body(notification, PUBLIC)
        assert set(got.body) == {"text", "blocks"}
        buttons = next(b for b in got.body["blocks"] if b["type"] == "actions")["elements"]
        assert {b["url"] for b in buttons} == {f"{PUBLIC}/grants/{GID}#decide"}  # the console page, no API action


def test_unknown_notifier_is_a_non_retryable_error(notification):
    acts = NotificationActivities([NotifierConfig(name="hook", url="http://127.0.0.1:9/hook")])
    with pytest.raises(ApplicationError) as e:
        run(acts, DeliveryRequest(notifier="nope", notification=notification))
    assert e.value.type == UNKNOWN_NOTIFIER and e.value.non_retryable
    assert "nope" in str(e.value) and "hook" in str(e.value)


def test_built_from_settings_and_routes(receiver):
    s = Settings(
        public_url=PUBLIC,
        notifiers=[
            {"name": "sec", "format": "slack", "url": receiver.url, "audiences": ["approvers", "security"]},
            {"name": "req", "url": receiver.url, "audiences": ["requester"]},
        ],
    )
    acts = NotificationActivities.from_settings(s)
    assert acts.public_url == PUBLIC
    assert [a.__name__ for a in acts.all()] == ["deliver_notification"]
    # what the worker puts in every grant's GrantOptions.notifiers
    assert route_table(s.notifiers) == {
        "approvers": ["sec"],
        "requester": ["req"],
        "security": ["sec"],
        "reviewers": [],
    }
