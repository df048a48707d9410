"""End to end through the HTTP API with real Temporal, OpenBao and a real worker."""

from __future__ import annotations

from datetime import UTC

import hvac
import pytest

from tests.support import eventually
from tests.workflows.support import FULL_LIFECYCLE


async def _request(api, user="alice", **body):
    body = {"entitlement": "secrets-admin", "duration": "PT2H", "reason": "rotate the platform DB password", **body}
    return await api.call(user, "POST", "/v1/grants", json=body)


async def test_request_approve_unwrap_use_expire_and_prove(api, openbao):
    r = await _request(api, duration=5, ticket="CHG-1")
    assert r.status_code == 202, r.text
    gid = r.json()["grant_id"]
    await api.wait_state("alice", gid, "awaiting_approval")

    r = await api.call("bob", "POST", f"/v1/grants/{gid}/approve", json={"comment": "ok for CHG-1"})
    assert r.status_code == 200, r.text
    await api.wait_state("alice", gid, "active")

    r = await api.call("alice", "GET", f"/v1/grants/{gid}/credential")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    token = hvac.Client(url=openbao.address, token=r.json()["wrapping_token"]).sys.unwrap()["auth"]["client_token"]
    mine = hvac.Client(url=openbao.address, token=token)
    mine.secrets.kv.v2.create_or_update_secret(path="platform/e2e", secret={"v": "1"}, mount_point="secret")
    assert (await api.call("alice", "GET", f"/v1/grants/{gid}/credential")).status_code == 409  # once only

    final = await api.wait_state("alice", gid, "revoked", timeout=30)
    assert final["end_reason"] == "expired"
    with pytest.raises(hvac.exceptions.Forbidden):
        mine.secrets.kv.v2.read_secret_version(path="platform/e2e", mount_point="secret", raise_on_deleted_version=True)

    ev = (await api.call("carol", "GET", f"/v1/grants/{gid}/evidence")).json()
    assert ev["verification"]["ok"] is True
    types = [e["type"] for e in ev["events"]]
    assert types == FULL_LIFECYCLE
    roles = {e["type"]: (e["actor"]["id"], e["actor"]["role"]) for e in ev["events"]}
    assert roles["grant.requested"] == ("alice", "requester")
    assert roles["approval.granted"] == ("bob", "approver")
    assert roles["credential.issued"][1] == "executor"
    assert token not in str(ev) and r.json().get("wrapping_token", "") not in str(ev)


async def test_self_approval_and_non_approver_are_forbidden_and_change_nothing(api):
    gid = (await _request(api)).json()["grant_id"]
    before = await api.wait_state("alice", gid, "awaiting_approval")

    r = await api.call("alice", "POST", f"/v1/grants/{gid}/approve", json={})
    assert r.status_code == 403 and r.json()["error"] == "self_approval", r.text
    assert "separation of duties" in r.json()["message"]
    r = await api.call("dave", "POST", f"/v1/grants/{gid}/approve", json={})
    assert r.status_code == 403 and r.json()["error"] == "not_an_approver", r.text
    assert "security" in r.json()["message"]

    after = (await api.call("alice", "GET", f"/v1/grants/{gid}")).json()
    assert after["state"] == "awaiting_approval" and after["approvals"] == [] and after["events"] == before["events"]


async def test_approval_after_revoke_is_a_conflict(api):
    gid = (await _request(api)).json()["grant_id"]
    await api.wait_state("alice", gid, "awaiting_approval")
    r = await api.call("alice", "POST", f"/v1/grants/{gid}/revoke", json={"reason": "not needed"})
    assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
    r = await api.call("bob", "POST", f"/v1/grants/{gid}/approve", json={})
    assert r.status_code == 409, r.text
    assert "cancelled" in r.json()["message"]


async def test_revoke_active_grant_then_approve_is_409(api, openbao):
    r = await _request(api, entitlement="secrets-readonly", duration="PT1H")
    gid = r.json()["grant_id"]
    await api.wait_state("alice", gid, "active")
    assert (await api.call("dave", "POST", f"/v1/grants/{gid}/revoke", json={"reason": "x"})).status_code == 403
    r = await api.call("alice", "POST", f"/v1/grants/{gid}/revoke", json={"reason": "done early"})
    assert r.status_code == 200, r.text
    await api.wait_state("alice", gid, "revoked")
    r = await api.call("bob", "POST", f"/v1/grants/{gid}/approve", json={})
    assert r.status_code == 409 and "revoked" in r.json()["message"], r.text


async def test_same_request_id_returns_one_grant(api):
    a = await _request(api, entitlement="secrets-readonly", request_id="deploy-42")
    b = await _request(api, entitlement="secrets-readonly", request_id="deploy-42")
    assert a.status_code == b.status_code == 202
    assert a.json()["grant_id"] == b.json()["grant_id"]
    gid = a.json()["grant_id"]
    await api.wait_state("alice", gid, "active")
    c = await _request(api, entitlement="secrets-readonly", request_id="deploy-42")  # after activation, too
    assert c.json()["grant_id"] == gid
    rows = (await api.call("alice", "GET", "/v1/grants", params={"requester": "alice"})).json()["grants"]
    assert [row["grant_id"] for row in rows].count(gid) == 1
    issued = [e for e in api.ledger.events(gid) if e.type == "credential.issued"]
    assert len(issued) == 1
    other = await _request(api, entitlement="secrets-readonly", request_id="deploy-42", reason="different")
    assert other.status_code == 409 and other.json()["error"] == "request_id_reused"


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"duration": "a while"}, "ISO 8601"),
        ({"duration": "PT9H"}, "exceeds the maximum for secrets-admin"),
        (
            {"entitlement": "root-everything"},
            "valid ids: secrets-readonly, secrets-admin, secrets-prod-write, db-readonly",
        ),
        ({"reason": ""}, "a reason is required"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_bad_input_is_422_with_a_message(api, body, needle):
    r = await _request(api, **body)
    assert r.status_code == 422, r.text
    assert needle in r.json()["message"], r.json()
    assert (await api.call("alice", "GET", "/v1/grants")).json()["count"] == 0


async def test_authentication_and_unknown_grant(api):
    assert (await api.call(None, "GET", "/v1/catalog")).status_code == 401
    async with api.as_(None) as c:
        r = await c.get("/v1/catalog", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    r = await api.call("alice", "GET", "/v1/grants/grant-does-not-exist")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await api.call("bob", "POST", "/v1/grants/grant-does-not-exist/approve", json={})
    assert r.status_code == 404
    cat = (await api.call("alice", "GET", "/v1/catalog")).json()
    assert all(e["you_may_request"] for e in cat["entitlements"])  # alice is in platform
    bob_cat = (await api.call("bob", "GET", "/v1/catalog")).json()
    assert not any(e["you_may_request"] for e in bob_cat["entitlements"])


async def test_ineligible_requester_is_denied_with_evidence(api):
    r = await _request(api, user="bob")
    assert r.status_code == 403 and r.json()["error"] == "policy_denied", r.text
    assert r.json()["reason_codes"] == ["requester_not_eligible"]
    gid = r.json()["grant_id"]
    await api.wait_state("bob", gid, "denied")

    async def stored() -> dict:  # the evidence is written once the workflow task that decided it is committed
        ev = (await api.call("bob", "GET", f"/v1/grants/{gid}/evidence")).json()
        assert len(ev.get("events", [])) == 2, ev
        return ev

    ev = await eventually(stored, 10, "the evidence stored")
    assert [e["type"] for e in ev["events"]] == ["grant.requested", "policy.decided"]
    assert ev["events"][1]["data"]["reason_codes"] == ["requester_not_eligible"]


async def test_grant_whose_history_is_gone_is_served_from_the_ledger(api):
    from datetime import datetime

    from jitaccess.domain.events import make_event
    from jitaccess.domain.principals import SYSTEM_ACTOR

    gid = "grant-archived-only"
    ev = make_event(gid, None, "grant.requested", datetime.now(UTC), SYSTEM_ACTOR, {})
    api.ledger.append(
        [ev],
        {
            "grant_id": gid,
            "state": "revoked",
            "entitlement": "secrets-readonly",
            "requester": "alice",
            "provider": "vault_token",
            "expires_at": None,
            "seq": 1,
        },
    )
    r = await api.call("alice", "GET", f"/v1/grants/{gid}")
    assert r.status_code == 200 and r.json()["source"] == "ledger" and r.json()["state"] == "revoked", r.text
