"""Issue 4 through the HTTP API with real servers: a multi-stage approval with a delegate,
a break-glass grant to its review, and an extension."""

from __future__ import annotations

import hvac

from tests.support import eventually


async def test_multi_stage_approval_with_a_delegate(api):
    r = await api.call(
        "alice",
        "POST",
        "/v1/grants",
        json={"entitlement": "secrets-prod-write", "duration": "PT20M", "reason": "hotfix"},
    )
    assert r.status_code == 202, r.text
    gid = r.json()["grant_id"]
    g = await api.wait_state("alice", gid, "awaiting_approval")
    assert {p["stage"] for p in g["pending_approval"]} == {"owning-team", "security"}

    # carol (security) delegates to erin, who has no approval authority of her own
    r = await api.call("erin", "POST", f"/v1/grants/{gid}/approve", json={})
    assert r.status_code == 403 and r.json()["error"] == "not_an_approver"
    r = await api.call(
        "carol", "POST", "/v1/delegations", json={"delegate": "erin", "duration": "PT1H", "reason": "on leave"}
    )
    assert r.status_code == 201, r.text
    bad = await api.call("carol", "POST", "/v1/delegations", json={"delegate": "carol", "reason": "x"})
    assert (
        bad.status_code == 422
        and "ends_at or duration" in bad.json()["message"]
        and "yourself" in bad.json()["message"]
    )

    r = await api.call("erin", "POST", f"/v1/grants/{gid}/approve", json={"comment": "for carol"})
    assert r.status_code == 200, r.text
    assert r.json()["approvals"][0]["on_behalf_of"] == "carol" and r.json()["state"] == "awaiting_approval"
    r = await api.call("frank", "POST", f"/v1/grants/{gid}/approve", json={})
    assert r.status_code == 200 and r.json()["state"] == "approved", r.text
    await api.wait_state("alice", gid, "active")
    await api.call("alice", "POST", f"/v1/grants/{gid}/revoke", json={"reason": "done"})
    await api.wait_state("alice", gid, "revoked")

    ev = (await api.call("bob", "GET", f"/v1/grants/{gid}/evidence")).json()
    assert ev["verification"]["ok"]
    granted = [e for e in ev["events"] if e["type"] == "approval.granted"]
    assert [(e["actor"]["id"], e["data"]["stage"], e["data"]["on_behalf_of"]) for e in granted] == [
        ("erin", "security", "carol"),
        ("frank", "owning-team", None),
    ]
    # the delegation itself is evidence, on its own chain
    verify = (await api.call("ivan", "GET", "/v1/evidence/verify")).json()  # auditors verify every chain
    assert verify["ok"] and any(r["grant_id"].startswith("delegation-") for r in verify["results"])


async def test_break_glass_to_review(api, openbao):
    body = {"entitlement": "secrets-admin", "duration": 3, "reason": "prod down", "break_glass": True}
    r = await api.call("alice", "POST", "/v1/grants", json=body)
    assert r.status_code == 422 and "incident" in r.json()["message"]
    r = await api.call("dave", "POST", "/v1/grants", json={**body, "incident": "INC-77"})
    assert r.status_code == 403 and r.json()["reason_codes"] == ["not_break_glass_eligible"]
    r = await api.call("alice", "POST", "/v1/grants", json={**body, "incident": "INC-77"})
    assert r.status_code == 202, r.text
    gid = r.json()["grant_id"]
    await api.wait_state("alice", gid, "active", timeout=10)  # no approval wait
    wrapped = (await api.call("alice", "GET", f"/v1/grants/{gid}/credential")).json()["wrapping_token"]
    token = hvac.Client(url=openbao.address, token=wrapped).sys.unwrap()["auth"]["client_token"]
    hvac.Client(url=openbao.address, token=token).secrets.kv.v2.create_or_update_secret(
        path="platform/incident", secret={"fixed": "yes"}, mount_point="secret"
    )

    await api.wait_state("alice", gid, "pending_review", timeout=30)
    listed = (
        await api.call("bob", "GET", "/v1/grants", params={"break_glass": "true", "state": "pending_review"})
    ).json()
    assert [g["grant_id"] for g in listed["grants"]] == [gid]
    assert (await api.call("bob", "GET", "/v1/grants", params={"break_glass": "false"})).json()["count"] == 0

    r = await api.call("alice", "POST", f"/v1/grants/{gid}/review", json={"outcome": "justified"})
    assert r.status_code == 403 and r.json()["error"] == "self_review"
    r = await api.call("bob", "POST", f"/v1/grants/{gid}/review", json={"outcome": "not_justified"})
    assert r.status_code == 422 and r.json()["error"] == "notes_required"
    r = await api.call(
        "bob", "POST", f"/v1/grants/{gid}/review", json={"outcome": "justified", "notes": "INC-77 confirmed"}
    )
    assert r.status_code == 200 and r.json()["state"] == "reviewed", r.text
    await api.wait_state("bob", gid, "reviewed")

    ev = (await api.call("bob", "GET", f"/v1/grants/{gid}/evidence")).json()
    assert ev["verification"]["ok"]
    types = [e["type"] for e in ev["events"]]
    assert types[:3] == ["grant.requested", "policy.decided", "grant.approved"] and types[-2:] == [
        "review.requested",
        "review.completed",
    ]
    assert ev["events"][2]["data"]["break_glass"] is True and ev["events"][2]["data"]["incident"] == "INC-77"


async def test_extension_through_the_api(api):
    gid = (
        await api.call(
            "alice",
            "POST",
            "/v1/grants",
            json={"entitlement": "secrets-readonly", "duration": "PT10M", "reason": "debug"},
        )
    ).json()["grant_id"]
    g = await api.wait_state("alice", gid, "active")
    r = await api.call("alice", "POST", f"/v1/grants/{gid}/extend", json={"duration": "PT8H", "reason": "more"})
    assert r.status_code == 422 and r.json()["error"] == "duration_exceeds_max" and "at most" in r.json()["message"]
    r = await api.call("dave", "POST", f"/v1/grants/{gid}/extend", json={"duration": "PT5M", "reason": "x"})
    assert r.status_code == 403 and r.json()["error"] == "not_requester"
    r = await api.call("alice", "POST", f"/v1/grants/{gid}/extend", json={"duration": "PT5M", "reason": "more"})
    assert r.status_code == 200, r.text
    await api.wait_state("alice", gid, "active")

    async def applied() -> dict:
        g2 = (await api.call("alice", "GET", f"/v1/grants/{gid}")).json()
        return g2 if g2["extensions_applied"] else {}

    g2 = await eventually(applied, 5, "the extension applied")
    assert g2["duration_seconds"] == 15 * 60 and g2["expires_at"] > g["expires_at"]
    await api.call("alice", "POST", f"/v1/grants/{gid}/revoke", json={"reason": "done"})
