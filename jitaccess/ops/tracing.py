"""OpenTelemetry tracing: off unless OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set.

When on, one trace follows a grant from the HTTP request (FastAPI instrumentation) through the
Temporal client's StartWorkflow, the workflow run and every activity (temporalio.contrib.
opentelemetry.TracingInterceptor on the client, which the worker built from it inherits).
Spans go to the OTLP/HTTP exporter (extra `otlp`), configured by the standard OTEL_* variables
(OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_HEADERS, ...). Tests install their own provider with
`configure(provider)` (an in-memory exporter)."""

from __future__ import annotations

import os
import threading
from typing import Any

import structlog

log = structlog.get_logger("jitaccess.tracing")

_state: dict[str, Any] = {}
_lock = threading.Lock()


def configure(provider: Any | None) -> None:
    """Use `provider` (an opentelemetry.sdk.trace.TracerProvider) from now on; None turns tracing off."""
    with _lock:
        _state["provider"] = provider
        _state["configured"] = True


def reset() -> None:
    """Forget the provider: the next use sets it up from the environment again (tests)."""
    with _lock:
        _state.clear()


def provider() -> Any | None:
    """The tracer provider in use, set up from the environment on first use; None when off."""
    with _lock:
        if not _state.get("configured"):
            _state["provider"] = _from_env()
            _state["configured"] = True
        return _state["provider"]


def _from_env() -> Any | None:
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as e:
        log.error(
            "tracing_off", reason=f"OTEL_EXPORTER_OTLP_ENDPOINT is set but {e.name} is missing: install jitaccess[otlp]"
        )
        return None
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "jitaccess")})
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tp)  # libraries that ask the global API see the same provider
    return tp


def client_interceptors() -> list[Any]:
    """For Client.connect: the Temporal tracing interceptor (client and worker side), or none."""
    tp = provider()
    if tp is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(tp.get_tracer("jitaccess.temporal"))]


def instrument_app(app: Any) -> None:
    """FastAPI server spans for every request (the trace's root), when tracing is on."""
    tp = provider()
    if tp is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=tp, excluded_urls="healthz,readyz,metrics")
