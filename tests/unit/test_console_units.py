"""The web console's pure parts: sessions (expiry, rotation, CSRF), redirects that stay local,
the sign-in's state/nonce checks, and the display helpers. The pages themselves are tested in a real
browser (tests/e2e/test_console.py)."""

from __future__ import annotations

import time

import pytest

from jitaccess.console.core import safe_next
from jitaccess.console.formatting import approvers_of, human_duration
from jitaccess.console.oidc import OidcClient, SignInFailed
from jitaccess.console.rules import residual_window
from jitaccess.console.session import SessionStore


def test_sessions_expire_rotate_and_check_csrf():
    store = SessionStore(ttl=60, idle=30, max_sessions=10)
    s = store.new()
    assert store.get(s.sid) is s and store.get("nope") is None and store.get(None) is None
    assert s.csrf_ok(s.csrf) and not s.csrf_ok("x") and not s.csrf_ok(None) and not s.csrf_ok("")
    new = store.rotate(s)  # at sign-in: the pre-sign-in ID (maybe planted) dies
    assert store.get(s.sid) is None and store.get(new.sid) is new and new.csrf != s.csrf
    new.id_token, new.token_exp = "t", time.time() - 1  # the ID token expired: so did the session
    assert store.get(new.sid) is None
    idle = store.new()
    idle.last_seen -= 31
    assert store.get(idle.sid) is None
    for _ in range(20):
        store.new()
    assert len(store._s) <= 10  # bounded


@pytest.mark.parametrize(
    "given, want",
    [
        ("/grants/grant-1#decide", "/grants/grant-1#decide"),
        ("/access", "/access"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_next_is_always_a_local_path(given, want):
    assert safe_next(given) == want


async def test_sign_in_answer_must_match_this_browsers_state():
    c = OidcClient("https://idp.example", "cid", "openid")
    pending = {"state": "s1", "nonce": "n1", "verifier": "v", "redirect_uri": "http://x/cb", "started": time.time()}
    with pytest.raises(SignInFailed, match="state mismatch"):
        await c.finish(pending, {"state": "other", "code": "c"}, validator=None)  # type: ignore[arg-type]
    with pytest.raises(SignInFailed, match="refused: access_denied"):
        await c.finish(pending, {"state": "s1", "error": "access_denied"}, validator=None)  # type: ignore[arg-type]
    old = {**pending, "started": time.time() - 3600}
    with pytest.raises(SignInFailed, match="10 minutes"):
        await c.finish(old, {"state": "s1", "code": "c"}, validator=None)  # type: ignore[arg-type]


def test_display_helpers():
    assert human_duration("PT1H30M") == "1h 30m" and human_duration(90) == "1m 30s" and human_duration(None) == ""
    staged = {
        "approval": {
            "stages": [
                {"name": "lead", "approver_groups": ["platform-leads"], "min_approvals": 1},
                {"name": "sec", "approver_groups": ["security"], "min_approvals": 2},
            ],
            "stage_order": "parallel",
        }
    }
    assert approvers_of(staged) == "1 of platform-leads and 2 of security"
    assert approvers_of({"approval": {"auto_approve": True}}) == "auto-approved"
    events = [
        {"type": "credential.issued", "data": {"residual_window_seconds": 600}},
        {"type": "revocation.confirmed", "data": {"credential_expires_at": "2030-01-01T00:00:00+00:00"}},
    ]
    assert residual_window(events) == {"seconds": 600, "until": "2030-01-01T00:00:00+00:00"}
    assert residual_window([{"type": "credential.issued", "data": {}}]) is None
