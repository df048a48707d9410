"""Tracing: with a tracer provider configured (here an in-memory exporter; in production OTLP when
OTEL_EXPORTER_OTLP_ENDPOINT is set), one grant's HTTP request, its workflow and its activities
share one trace."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jitaccess.bootstrap import connect
from jitaccess.dev.identity import DevTokens
from jitaccess.ops import tracing
from tests.conftest import IDPS, running_worker
from tests.e2e.conftest import uvicorn_api
from tests.support import eventually


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.configure(provider)
    yield exporter
    tracing.reset()


def test_tracing_is_off_without_an_otlp_endpoint(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    tracing.reset()
    try:
        assert tracing.provider() is None and tracing.client_interceptors() == []
    finally:
        tracing.reset()


async def test_a_grant_is_one_trace_from_request_to_activities(spans, settings):
    client = await connect(settings)  # with tracing on: the TracingInterceptor (client and worker side)
    async with running_worker(settings, client=client):
        async with uvicorn_api(settings, client) as base:
            token = await asyncio.to_thread(DevTokens(IDPS[settings.vault_addr]).__getitem__, "alice")
            async with httpx.AsyncClient(base_url=base, timeout=30) as c:
                body = {"entitlement": "secrets-readonly", "duration": "PT1H", "reason": "trace me"}
                r = await c.post("/v1/grants", json=body, headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 202, r.text
                gid = r.json()["grant_id"]

                def activities_ran() -> bool:
                    names = {s.name for s in spans.get_finished_spans()}
                    assert {"RunActivity:issue_credential", "RunActivity:record_events"} <= names, sorted(names)
                    return True

                await eventually(activities_ran, 30, "the activities' spans", interval=0.2)

    finished = spans.get_finished_spans()
    http = [s for s in finished if s.kind.name == "SERVER" and "/v1/grants" in s.name and "POST" in s.name]
    assert http, sorted({s.name for s in finished})
    trace_id = http[0].context.trace_id
    in_trace = {s.name for s in finished if s.context.trace_id == trace_id}
    assert {
        "StartWorkflow:GrantWorkflow",
        "RunWorkflow:GrantWorkflow",
        "StartActivity:issue_credential",
        "RunActivity:issue_credential",
        "RunActivity:record_events",
    } <= in_trace, sorted(in_trace)
    start = next(s for s in finished if s.name == "StartWorkflow:GrantWorkflow" and s.context.trace_id == trace_id)
    assert start.attributes.get("temporalWorkflowID") == gid
