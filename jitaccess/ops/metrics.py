"""Prometheus metrics: the Temporal SDK's runtime metrics and jitaccess's own.

Where each number comes from (never from workflow code, which must stay deterministic):
- `record_events` (an activity that sees every identity event once it is stored) derives grant
  outcomes and the two latencies from the events' own times: request -> active
  (`grant.requested` .. `fulfilment.verified`) and expiry -> revocation confirmed (the grant's
  `expires_at` .. `revocation.confirmed` / `revocation.deferred`). Only newly stored events count,
  so an activity retry or a replay never counts twice.
- provider calls are timed where they are made (`instrument_providers` wraps the registry the
  activities use), by provider, operation and outcome;
- notification failures in the delivery activity; chain verification failures where chains are
  verified (API, offline verifier);
- gauges of "now" (revocations failing, approvals pending and the oldest one's age, active grants)
  are read from the ledger when scraped (`LedgerCollector`, served by the API): the ledger is the
  one place that knows them for the whole fleet.

The SDK's metrics come from the Temporal runtime's own Prometheus exporter (`sdk_runtime`),
bound to a loopback port; `/metrics` serves our registry followed by the exporter's text.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from jitaccess.domain.contracts import EventBatch
from jitaccess.domain.events import IdentityEvent
from jitaccess.providers.base import Provider, ProviderRegistry

log = structlog.get_logger("jitaccess.metrics")

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
_REVOKE_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300, 900, 3600)
_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

GRANT_OUTCOMES = Counter(
    "jitaccess_grant_outcomes",
    "Grants reaching an outcome: activated, revoked, denied, refused_by_issuer, approval_expired, "
    "cancelled, issue_failed",
    ["entitlement", "outcome"],
    registry=REGISTRY,
)
REQUEST_TO_ACTIVE = Histogram(
    "jitaccess_request_to_active_seconds",
    "From grant.requested to fulfilment.verified (issued and read back), workflow time",
    ["entitlement"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
EXPIRY_TO_REVOKED = Histogram(
    "jitaccess_expiry_to_revocation_confirmed_seconds",
    "From a grant's expiry to its revocation confirmed by read-back (grants that ran to expiry)",
    ["provider"],
    buckets=_REVOKE_BUCKETS,
    registry=REGISTRY,
)
NOTIFICATION_FAILURES = Counter(
    "jitaccess_notification_failures",
    "Notification delivery attempts that failed (non-2xx, refused, timed out)",
    ["notifier", "kind"],
    registry=REGISTRY,
)
CHAIN_VERIFICATION_FAILURES = Counter(
    "jitaccess_chain_verification_failures",
    "Evidence chains found broken when verified",
    ["where"],
    registry=REGISTRY,
)
PROVIDER_CALLS = Histogram(
    "jitaccess_provider_call_seconds",
    "Provider calls (issue, read-back, revoke, extend, list) by provider, operation and outcome",
    ["provider", "operation", "outcome"],
    buckets=_CALL_BUCKETS,
    registry=REGISTRY,
)
EVENTS_RECORDED = Counter(
    "jitaccess_identity_events",
    "Identity events stored in the ledger, by type and severity",
    ["type", "severity"],
    registry=REGISTRY,
)

# -- from the events ------------------------------------------------------------------------------
_OUTCOME_OF = {
    "fulfilment.verified": "activated",
    "revocation.confirmed": "revoked",
    "revocation.deferred": "revoked",
    "approval.denied": "denied",
    "credential.issue_refused": "refused_by_issuer",
    "approval.expired": "approval_expired",
    "grant.cancelled": "cancelled",
    "credential.issue_failed": "issue_failed",
}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def observe_events(batch: EventBatch, inserted: int, requested_at: Callable[[str], str | None]) -> None:
    """Count what the newly stored events of one batch say (the last `inserted` of them: the
    ledger stores a batch in one statement, so a retried batch inserts none). `requested_at`
    gives a grant's grant.requested time when that event was stored by an earlier batch.
    Never raises: metrics must not fail evidence recording."""
    try:
        _observe(batch, inserted, requested_at)
    except Exception as e:  # pragma: no cover - defensive
        log.warning("metrics_observe_failed", error=f"{type(e).__name__}: {e}")


def _observe(batch: EventBatch, inserted: int, requested_at: Callable[[str], str | None]) -> None:
    from jitaccess.domain.severity import severity

    if inserted <= 0:
        return
    new: list[IdentityEvent] = batch.events[-inserted:]
    for ev in new:
        EVENTS_RECORDED.labels(ev.type, severity(ev.type, ev.data)).inc()
    if not batch.events or not batch.events[0].grant_id.startswith("grant-"):
        return  # onboarding, delegation, reconciliation chains: no grant outcomes
    s = batch.summary
    entitlement = str(s.get("entitlement") or "unknown")
    provider = str(s.get("provider") or "unknown")
    for ev in new:
        outcome = _OUTCOME_OF.get(ev.type)
        if ev.type == "policy.decided" and ev.data.get("outcome") == "deny":
            outcome = "denied"
        if outcome:
            GRANT_OUTCOMES.labels(entitlement, outcome).inc()
        if ev.type == "fulfilment.verified":
            start = next((e.at for e in batch.events if e.type == "grant.requested"), None)
            start = start or requested_at(ev.grant_id)
            if start:
                REQUEST_TO_ACTIVE.labels(entitlement).observe(max(0.0, (_at(ev.at) - _at(start)).total_seconds()))
        if ev.type in ("revocation.confirmed", "revocation.deferred") and s.get("expires_at"):
            late = (_at(ev.at) - _at(str(s["expires_at"]))).total_seconds()
            if late >= 0:  # ran to expiry (an early revoke ends before it and is not an expiry)
                EXPIRY_TO_REVOKED.labels(provider).observe(late)


def chain_verification_failed(where: str, count: int = 1) -> None:
    if count > 0:
        CHAIN_VERIFICATION_FAILURES.labels(where).inc(count)


def notification_failed(notifier: str, kind: str) -> None:
    NOTIFICATION_FAILURES.labels(notifier, kind).inc()


# -- provider calls -----------------------------------------------------------------------------
TIMED_OPERATIONS = frozenset(
    {"issue", "verify_active", "revoke", "verify_revoked", "extend", "list_managed", "expected_credential"}
)


class TimedProvider:
    """A provider whose calls are timed; everything else passes through unchanged."""

    def __init__(self, inner: Provider) -> None:
        self._inner = inner
        self.name = inner.name

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._inner, attr)
        if attr not in TIMED_OPERATIONS or not callable(value):
            return value
        name = self.name

        def timed(*args: Any, **kw: Any) -> Any:
            t0, outcome = time.perf_counter(), "error"
            try:
                result = value(*args, **kw)
                outcome = "ok"
                return result
            finally:
                PROVIDER_CALLS.labels(name, attr, outcome).observe(time.perf_counter() - t0)

        return timed


def instrument_providers(registry: ProviderRegistry) -> ProviderRegistry:
    return ProviderRegistry({n: cast(Provider, TimedProvider(registry.get(n))) for n in registry.names()})


# -- gauges from the ledger ---------------------------------------------------------------------
class LedgerCollector(Collector):
    """Fleet-wide "now" gauges, read from the ledger's grant summaries at scrape time."""

    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from jitaccess.ledger.store import grants

        failing = GaugeMetricFamily(
            "jitaccess_revocations_failing", "Grants whose revocation is not confirmed yet and is being retried"
        )
        pending = GaugeMetricFamily("jitaccess_approvals_pending", "Grants awaiting approval", labels=["entitlement"])
        oldest = GaugeMetricFamily(
            "jitaccess_approval_pending_oldest_seconds",
            "Age of the oldest grant awaiting approval (since it was requested)",
            labels=["entitlement"],
        )
        active = GaugeMetricFamily("jitaccess_grants_active", "Grants active now", labels=["entitlement"])
        q = (
            select(grants.c.state, grants.c.entitlement, func.count(), func.min(grants.c.created_at))
            .where(grants.c.state.in_(["awaiting_approval", "revocation_failing", "active"]))
            .group_by(grants.c.state, grants.c.entitlement)
        )
        now = datetime.now(UTC)
        n_failing = 0
        with self.ledger.engine.connect() as conn:
            for state, entitlement, count, first in conn.execute(q):
                if state == "revocation_failing":
                    n_failing += count
                elif state == "active":
                    active.add_metric([entitlement], count)
                else:
                    pending.add_metric([entitlement], count)
                    age = (now - _at(first)).total_seconds() if first else 0.0
                    oldest.add_metric([entitlement], max(0.0, age))
        failing.add_metric([], n_failing)
        yield from (failing, pending, oldest, active)


# -- the Temporal SDK's metrics -----------------------------------------------------------------
_sdk: dict[str, Any] = {}
_sdk_lock = threading.Lock()


def sdk_runtime() -> Any:
    """One Temporal runtime per process whose metrics go to a Prometheus exporter on a loopback
    port (scraped by `render`); None if it cannot be made (SDK metrics then missing, logged)."""
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    with _sdk_lock:
        if "runtime" not in _sdk:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            try:
                _sdk["runtime"] = Runtime(
                    telemetry=TelemetryConfig(
                        metrics=PrometheusConfig(
                            bind_address=f"127.0.0.1:{port}",
                            counters_total_suffix=True,
                            durations_as_seconds=True,
                        )
                    )
                )
                _sdk["url"] = f"http://127.0.0.1:{port}/metrics"
            except Exception as e:
                log.warning("sdk_metrics_off", error=f"{type(e).__name__}: {e}")
                _sdk["runtime"] = None
        return _sdk["runtime"]


def _sdk_text() -> bytes:
    url = _sdk.get("url")
    if not url:
        return b""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            body = r.read()
    except Exception as e:
        log.warning("sdk_metrics_unavailable", error=f"{type(e).__name__}: {e}")
        return b""
    return body if body.endswith(b"\n") or not body else body + b"\n"


def render(ledger: Any = None) -> bytes:
    """The whole exposition: our registry, the ledger gauges (with a ledger), the SDK's."""
    out = generate_latest(REGISTRY)
    if ledger is not None:
        extra = CollectorRegistry(auto_describe=False)
        extra.register(LedgerCollector(ledger))
        try:
            out += generate_latest(extra)
        except Exception as e:
            log.warning("ledger_metrics_unavailable", error=f"{type(e).__name__}: {e}")
    return out + _sdk_text()


class MetricsServer:
    """The worker's small HTTP server: GET /metrics (and /healthz) on `port`, in a thread."""

    def __init__(self, host: str, port: int, ledger: Any = None) -> None:
        ledger_ = ledger

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/metrics":
                    body, ctype, code = render(ledger_), CONTENT_TYPE_LATEST, 200
                elif self.path == "/healthz":
                    body, ctype, code = b'{"status":"ok"}', "application/json", 200
                else:
                    body, ctype, code = b"not found\n", "text/plain", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes are not worth a log line each

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
