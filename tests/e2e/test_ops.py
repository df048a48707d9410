"""Operations through the real API (uvicorn + a real worker, Temporal, OpenBao): /readyz, /metrics,
the codec endpoint for the Temporal UI, and the grant's search attributes in Temporal visibility."""

from __future__ import annotations

import base64
import contextlib

import pytest
from temporalio.api.common.v1 import Payload

from jitaccess.bootstrap import connect
from jitaccess.dev.servers import free_port
from jitaccess.workers.codec import EncryptionCodec
from tests.e2e.conftest import uvicorn_api
from tests.support import eventually

READONLY = {"entitlement": "secrets-readonly", "duration": "PT1H", "reason": "ops test"}


@pytest.fixture
def settings(settings):
    """Search attributes on (they are off by default): this module tests them in visibility."""
    return settings.model_copy(update={"search_attributes": True})


async def _active_grant(api, user: str = "alice") -> str:
    r = await api.call(user, "POST", "/v1/grants", json=READONLY)
    assert r.status_code == 202, r.text
    gid = r.json()["grant_id"]
    await api.wait_state(user, gid, "active")
    return gid


def _samples(text: str, name: str) -> dict[str, float]:
    """`name{labels} value` lines of one metric (label text -> value)."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            out[key[len(name) :]] = float(value)
    return out


async def test_readyz_names_nothing_when_all_is_reachable(api):
    r = await api.call(None, "GET", "/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready" and body["failed"] == []
    assert set(body["checks"]) == {"temporal", "ledger", "openbao", "catalogue"}


@contextlib.asynccontextmanager
async def _api_only(settings):
    """The API alone (no worker), on its own client: for readiness with a dependency down."""
    async with uvicorn_api(settings, await connect(settings)) as base:
        yield base


async def test_readyz_names_what_is_down(settings, tmp_path):
    import httpx

    down = settings.model_copy(update={"vault_addr": f"http://127.0.0.1:{free_port()}"})
    async with _api_only(down) as base, httpx.AsyncClient(base_url=base) as c:
        r = await c.get("/readyz")
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["failed"] == ["openbao"]
        assert body["checks"]["ledger"]["ok"] and body["checks"]["temporal"]["ok"]
    # the catalogue is read at start; readiness reads it again, so a file gone bad is named
    cat = tmp_path / "catalogue.yaml"
    cat.write_text(settings.catalogue_file.read_text())
    async with (
        _api_only(settings.model_copy(update={"catalogue_file": cat})) as base,
        httpx.AsyncClient(base_url=base) as c,
    ):
        assert (await c.get("/readyz")).status_code == 200
        cat.write_text("entitlements: [{id: 1}]\n")
        r = await c.get("/readyz")
        assert r.status_code == 503 and r.json()["failed"] == ["catalogue"], r.text


async def test_metrics_count_a_grant_and_its_provider_calls(api):
    gid = await _active_grant(api)
    r = await api.call(None, "GET", "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    activated = _samples(text, "jitaccess_grant_outcomes_total")
    assert activated.get('{entitlement="secrets-readonly",outcome="activated"}', 0) >= 1, text[:2000]
    latency = _samples(text, "jitaccess_request_to_active_seconds_count")
    assert latency.get('{entitlement="secrets-readonly"}', 0) >= 1
    calls = _samples(text, "jitaccess_provider_call_seconds_count")
    assert calls.get('{operation="issue",outcome="ok",provider="vault_token"}', 0) >= 1, calls
    assert calls.get('{operation="verify_active",outcome="ok",provider="vault_token"}', 0) >= 1
    # the ledger's gauges (fleet-wide, served by the API) and the Temporal SDK's runtime metrics
    assert _samples(text, "jitaccess_grants_active").get('{entitlement="secrets-readonly"}', 0) >= 1
    assert "jitaccess_revocations_failing " in text and "jitaccess_approvals_pending" in text
    assert "temporal_request" in text or "temporal_workflow" in text, "no Temporal SDK metrics"

    r = await api.call("alice", "POST", f"/v1/grants/{gid}/revoke", json={"reason": "done"})
    assert r.status_code == 200, r.text
    await api.wait_state("alice", gid, "revoked")
    text = (await api.call(None, "GET", "/metrics")).text
    assert (
        _samples(text, "jitaccess_grant_outcomes_total").get('{entitlement="secrets-readonly",outcome="revoked"}', 0)
        >= 1
    )
    assert (
        _samples(text, "jitaccess_provider_call_seconds_count").get(
            '{operation="verify_revoked",outcome="ok",provider="vault_token"}', 0
        )
        >= 1
    )


async def test_approvals_pending_gauge_and_its_age(api):
    r = await api.call("alice", "POST", "/v1/grants", json={**READONLY, "entitlement": "secrets-admin"})
    assert r.status_code == 202, r.text
    await api.wait_state("alice", r.json()["grant_id"], "awaiting_approval")
    text = (await api.call(None, "GET", "/metrics")).text
    assert _samples(text, "jitaccess_approvals_pending").get('{entitlement="secrets-admin"}', 0) >= 1
    assert '{entitlement="secrets-admin"}' in _samples(text, "jitaccess_approval_pending_oldest_seconds")


async def test_codec_decodes_for_an_auditor_and_refuses_a_requester(api, settings):
    codec = EncryptionCodec(settings.payload_key_ring())
    (enc,) = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'{"reason":"x"}')])
    body = {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in enc.metadata.items()},
                "data": base64.b64encode(enc.data).decode(),
            },
            {
                "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                "data": base64.b64encode(b"1").decode(),
            },
        ]
    }
    r = await api.call("ivan", "POST", "/codec/decode", json=body, headers={"X-Namespace": settings.temporal_namespace})
    assert r.status_code == 200, r.text
    first, second = r.json()["payloads"]
    assert base64.b64decode(first["metadata"]["encoding"]) == b"json/plain"
    assert base64.b64decode(first["data"]) == b'{"reason":"x"}'
    assert base64.b64decode(second["data"]) == b"1"  # not ours: passed through as it came

    r = await api.call("alice", "POST", "/codec/decode", json=body)
    assert r.status_code == 403 and r.json()["error"] == "not_auditor", r.text
    assert (await api.call(None, "POST", "/codec/decode", json=body)).status_code == 401
    # encoding is for admins: an auditor reads, never sends anything to a workflow
    plain = {"payloads": [body["payloads"][1]]}
    assert (await api.call("ivan", "POST", "/codec/encode", json=plain)).status_code == 403
    r = await api.call("erin", "POST", "/codec/encode", json=plain)
    assert r.status_code == 200, r.text
    (out,) = r.json()["payloads"]
    assert base64.b64decode(out["metadata"]["encoding"]) == b"binary/encrypted"
    r = await api.call("ivan", "POST", "/codec/decode", json={"payloads": [{"metadata": {}, "data": "%%%"}]})
    assert r.status_code == 422, r.text


async def test_codec_cors_only_for_the_configured_ui_origin(settings):
    import httpx

    ui = "http://temporal-ui.example:8080"
    s = settings.model_copy(update={"codec_cors_origins": [ui]})
    async with _api_only(s) as base, httpx.AsyncClient(base_url=base) as c:
        pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,x-namespace"}
        r = await c.options("/codec/decode", headers={"Origin": ui, **pre})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ui
        assert r.headers["access-control-allow-credentials"] == "true"
        r = await c.options("/codec/decode", headers={"Origin": "http://evil.example", **pre})
        assert "access-control-allow-origin" not in r.headers
        r = await c.get("/healthz", headers={"Origin": ui})  # CORS is for the codec endpoint only
        assert "access-control-allow-origin" not in r.headers


async def test_search_attributes_find_a_grant_by_requester_and_state(api, settings):
    gid = await _active_grant(api, "alice")
    client = await connect(settings)

    async def found(query: str) -> None:
        async def listed() -> bool:
            return bool([w.id async for w in client.list_workflows(f"WorkflowId='{gid}' AND {query}")])

        await eventually(listed, 15, f"{gid} found by {query}", interval=0.3)

    await found(
        "Requester='alice' AND GrantState='active' AND Entitlement='secrets-readonly' "
        "AND Provider='vault_token' AND BreakGlass=false"
    )
    r = await api.call("alice", "POST", f"/v1/grants/{gid}/revoke", json={"reason": "done"})
    assert r.status_code == 200, r.text
    await api.wait_state("alice", gid, "revoked")
    await found("Requester='alice' AND GrantState='revoked'")
    assert not [w async for w in client.list_workflows(f"WorkflowId='{gid}' AND GrantState='active'")]
