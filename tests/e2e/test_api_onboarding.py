"""Service onboarding through the HTTP API: onboard (pre-approved for the automation), the
automation fetches a child credential, a retry lands on the same onboarding, offboard."""

from __future__ import annotations

import hvac

from jitaccess.dev.seed import seed_dev_approle
from tests.support import eventually

BODY = {
    "template": "batch-job",
    "reason": "new nightly job",
    "workload": {
        "service": "nightly-report",
        "owning_team": "platform-leads",
        "environment": "staging",
        "repository": "git@example.com:data/nightly.git",
        "dependencies": ["vault"],
    },
}


async def wait_onboarding(api, oid, state, timeout=30):
    async def reached():
        o = (await api.call("deploy-bot", "GET", f"/v1/onboardings/{oid}")).json()
        assert o["state"] == state, o
        return o

    return await eventually(reached, timeout, f"onboarding {oid} {state}")


async def test_onboard_fetch_retry_offboard(api, openbao):
    seed_dev_approle(openbao.address, openbao.extra["root_token"])
    bad = await api.call("deploy-bot", "POST", "/v1/onboardings", json={**BODY, "template": "nope"})
    assert bad.status_code == 422 and "valid ids: payments-api, batch-job" in bad.json()["message"]
    r = await api.call("deploy-bot", "POST", "/v1/onboardings", json=BODY)
    assert r.status_code == 202, r.text
    oid = r.json()["onboarding_id"]
    assert oid == "onboarding-nightly-report-staging"
    o = await wait_onboarding(api, oid, "active")
    again = await api.call("deploy-bot", "POST", "/v1/onboardings", json=BODY)
    assert again.json()["onboarding_id"] == oid  # a retried request, not a second onboarding

    child = next(ch for ch in o["children"] if ch["entitlement"] == "payments-api-secret-id")
    cred = (await api.call("deploy-bot", "GET", f"/v1/grants/{child['grant_id']}/credential")).json()
    data = hvac.Client(url=openbao.address, token=cred["wrapping_token"]).sys.unwrap()["data"]
    login = hvac.Client(url=openbao.address).auth.approle.login(role_id=data["role_id"], secret_id=data["secret_id"])
    assert "jit-payments-read" in login["auth"]["policies"]

    r = await api.call("dave", "POST", f"/v1/onboardings/{oid}/offboard", json={"reason": "x"})
    assert r.status_code == 403 and r.json()["error"] == "not_allowed_to_offboard"
    r = await api.call("frank", "POST", f"/v1/onboardings/{oid}/offboard", json={"reason": "job retired"})
    assert r.status_code == 200, r.text
    o = await wait_onboarding(api, oid, "offboarded")
    assert all(ch["state"] == "revoked" for ch in o["children"])
    ev = (await api.call("ivan", "GET", "/v1/evidence/verify")).json()  # auditors verify every chain
    assert ev["ok"] and oid in {r["grant_id"] for r in ev["results"]}
    r = await api.call("deploy-bot", "POST", "/v1/onboardings", json=BODY)  # onboarding again after the end: a new run
    assert r.json()["onboarding_id"] == f"{oid}-r2"
    await wait_onboarding(api, f"{oid}-r2", "active")
    await api.call("deploy-bot", "POST", f"/v1/onboardings/{oid}/offboard", json={"reason": "cleanup"})
    await wait_onboarding(api, f"{oid}-r2", "offboarded")


def onboarding_body(template: str, service: str, team: str, env: str = "staging") -> dict:
    return {
        "template": template,
        "reason": "new service",
        "workload": {"service": service, "owning_team": team, "environment": env, "repository": "git@x:y.git"},
    }


async def test_onboarding_cannot_reach_what_a_direct_request_cannot(api):
    """Issue 8, bypass 1: bob (security) named his own team as the owner and got a platform token and
    the payments-api secret-ID, though he may request neither directly."""
    direct = await api.call("bob", "POST", "/v1/grants", json={"entitlement": "secrets-readonly", "reason": "x"})
    assert direct.status_code == 403 and "requester_not_eligible" in direct.json()["reason_codes"]
    r = await api.call("bob", "POST", "/v1/onboardings", json=onboarding_body("batch-job", "bob-svc2", "security"))
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "template_requester_not_eligible"
    assert {"template_requester_not_eligible", "requester_not_eligible"} <= set(r.json()["reason_codes"])
    assert "deploy-bot" in r.json()["message"]
    # a template humans may use (platform engineers), still not bob
    r = await api.call("bob", "POST", "/v1/onboardings", json=onboarding_body("payments-api", "bob-svc2", "security"))
    assert r.status_code == 403 and "requester_not_eligible" in r.json()["reason_codes"]
    # the automation cannot name a team that is neither its own nor its owner's
    r = await api.call("deploy-bot", "POST", "/v1/onboardings", json=onboarding_body("batch-job", "svc3", "security"))
    assert r.status_code == 403 and r.json()["error"] == "owning_team_not_yours", r.text
    # input errors stay 422
    r = await api.call("bob", "POST", "/v1/onboardings", json=onboarding_body("batch-job", "bob-svc2", "x", env="dev"))
    assert r.status_code == 422 and r.json()["reason_codes"] == ["environment_not_allowed"]


async def test_the_owning_team_alone_cannot_approve_a_platform_leads_secret(api):
    """Issue 8, bypass 2: alice (platform) with her peer dave approving got the payments-api secret-ID,
    which requested directly needs platform-leads."""
    r = await api.call("alice", "POST", "/v1/onboardings", json=onboarding_body("batch-job", "alice-svc", "platform"))
    assert r.status_code == 403 and r.json()["error"] == "template_requester_not_eligible", r.text
    r = await api.call(
        "alice", "POST", "/v1/onboardings", json=onboarding_body("payments-api", "alice-svc", "platform")
    )
    assert r.status_code == 202, r.text
    oid = r.json()["onboarding_id"]
    o = await wait_onboarding(api, oid, "awaiting_approval")
    assert [s["name"] for s in o["approval"]["stages"]] == ["owning-team", "payments-api-secret-id-approvers"]
    r = await api.call("dave", "POST", f"/v1/onboardings/{oid}/approve", json={"comment": "peer"})
    assert r.status_code == 200, r.text
    o = r.json()
    assert o["state"] == "awaiting_approval" and o["children"] == []  # dave's vote is not enough
    assert [v["stage"] for v in o["approval"]["votes"]] == ["owning-team"]
    r = await api.call("frank", "POST", f"/v1/onboardings/{oid}/deny", json={"reason": "not this way"})
    assert r.status_code == 200, r.text
    await wait_onboarding(api, oid, "denied")
    decided = await eventually(
        lambda: [e for e in api.ledger.events(oid) if e.type == "policy.decided"], 10, "policy.decided stored"
    )
    assert decided[0].data["stage_sources"]["payments-api-secret-id-approvers"] == [
        "entitlement:payments-api-secret-id/approvers"
    ]
