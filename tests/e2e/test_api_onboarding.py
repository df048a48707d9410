"""Service onboarding through the HTTP API: onboard (pre-approved for the automation), the
automation fetches a child credential, a retry lands on the same onboarding, offboard."""

from __future__ import annotations

import asyncio

import hvac

from jitaccess.providers.vault_approle import seed_dev_approle

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
    for _ in range(timeout * 10):
        o = (await api.call("deploy-bot", "GET", f"/v1/onboardings/{oid}")).json()
        if o["state"] == state:
            return o
        await asyncio.sleep(0.1)
    raise AssertionError(o)


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
    ev = (await api.call("bob", "GET", "/v1/evidence/verify")).json()
    assert ev["ok"] and oid in {r["grant_id"] for r in ev["results"]}
    r = await api.call("deploy-bot", "POST", "/v1/onboardings", json=BODY)  # onboarding again after the end: a new run
    assert r.json()["onboarding_id"] == f"{oid}-r2"
    await wait_onboarding(api, f"{oid}-r2", "active")
    await api.call("deploy-bot", "POST", f"/v1/onboardings/{oid}/offboard", json={"reason": "cleanup"})
    await wait_onboarding(api, f"{oid}-r2", "offboarded")
