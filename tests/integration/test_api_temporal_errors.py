"""When Temporal itself fails a call (seen under a 10,000-request burst: "Namespace default is not
found" from an overloaded dev server), the API answers 503 with what failed and how to retry,
never a bare 500. Real Temporal, asked for a namespace it does not have."""

from __future__ import annotations

import httpx

from jitaccess.api import create_app
from tests.oidc_issuer import LocalIssuer


async def test_a_temporal_failure_is_a_503_that_says_retry(settings):
    issuer = LocalIssuer()
    try:
        app = create_app(
            settings.model_copy(update={"oidc_issuers": [issuer.entry()], "temporal_namespace": "no-such-namespace"})
        )
        token = issuer.sign(preferred_username="alice", groups=["platform", "oncall"])
        body = {"entitlement": "secrets-readonly", "duration": "PT10M", "reason": "burst", "request_id": "r-1"}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
                r = await c.post("/v1/grants", json=body, headers={"Authorization": f"Bearer {token}"})
    finally:
        issuer.stop()
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1"
    answer = r.json()
    assert answer["error"] == "temporal_unavailable"
    assert "NOT_FOUND" in answer["message"] and "request_id" in answer["message"]
