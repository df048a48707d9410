"""Metrics derived from identity events (what record_events sees), provider call timing, the SIEM
line contract (type + severity) — without servers."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import structlog

from jitaccess.domain.contracts import EventBatch
from jitaccess.domain.events import make_event
from jitaccess.domain.principals import SYSTEM_ACTOR
from jitaccess.domain.severity import severity
from jitaccess.ops import metrics, siem
from jitaccess.providers.base import ProviderRegistry

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _chain(gid: str, steps: list[tuple[str, float, dict]]) -> list:
    evs, prev = [], None
    for type_, secs, data in steps:
        prev = make_event(gid, prev, type_, T0 + timedelta(seconds=secs), SYSTEM_ACTOR, data)
        evs.append(prev)
    return evs


def _value(metric, **labels) -> float:
    for fam in metric.collect():
        for s in fam.samples:
            if s.labels == labels and (s.name.endswith("_total") or s.name.endswith("_count")):
                return s.value
    return 0.0


def test_outcomes_and_latencies_come_from_event_times_and_count_once():
    gid = "grant-metrics-unit-1"
    evs = _chain(
        gid,
        [
            ("grant.requested", 0, {}),
            ("policy.decided", 0.01, {"outcome": "allow"}),
            ("grant.approved", 0.02, {}),
            ("credential.issued", 0.2, {}),
            ("fulfilment.verified", 0.25, {}),
        ],
    )
    summary = {
        "entitlement": "ent-unit",
        "provider": "prov-unit",
        "expires_at": (T0 + timedelta(seconds=60)).isoformat(),
    }
    before = _value(metrics.REQUEST_TO_ACTIVE, entitlement="ent-unit")
    metrics.observe_events(EventBatch(events=evs, summary=summary), len(evs), lambda _: None)
    assert _value(metrics.GRANT_OUTCOMES, entitlement="ent-unit", outcome="activated") == 1
    assert _value(metrics.REQUEST_TO_ACTIVE, entitlement="ent-unit") == before + 1
    # a retried batch inserts nothing and counts nothing
    metrics.observe_events(EventBatch(events=evs, summary=summary), 0, lambda _: None)
    assert _value(metrics.GRANT_OUTCOMES, entitlement="ent-unit", outcome="activated") == 1

    tail = _chain(gid, [("x", 0, {})] * 5 + [("grant.expired", 60, {}), ("revocation.confirmed", 60.4, {})])[5:]
    metrics.observe_events(EventBatch(events=tail, summary=summary), 2, lambda _: None)
    assert _value(metrics.GRANT_OUTCOMES, entitlement="ent-unit", outcome="revoked") == 1
    assert _value(metrics.EXPIRY_TO_REVOKED, provider="prov-unit") == 1
    buckets = {s.labels.get("le"): s.value for f in metrics.EXPIRY_TO_REVOKED.collect() for s in f.samples}
    assert buckets["0.5"] >= 1 and buckets["0.25"] == 0


def test_request_time_from_the_ledger_when_not_in_the_batch_and_early_revoke_is_no_expiry():
    gid = "grant-metrics-unit-2"
    evs = _chain(gid, [("grant.requested", 0, {})] + [("fulfilment.verified", 2.0, {})])
    summary = {
        "entitlement": "ent-unit-2",
        "provider": "prov-unit-2",
        "expires_at": (T0 + timedelta(hours=1)).isoformat(),
    }
    metrics.observe_events(EventBatch(events=evs[1:], summary=summary), 1, lambda g: evs[0].at)
    assert _value(metrics.REQUEST_TO_ACTIVE, entitlement="ent-unit-2") == 1
    early = _chain(gid, [("a", 0, {})] * 2 + [("revocation.confirmed", 10, {})])[2:]
    metrics.observe_events(EventBatch(events=early, summary=summary), 1, lambda _: None)
    assert _value(metrics.EXPIRY_TO_REVOKED, provider="prov-unit-2") == 0
    denied = _chain("grant-metrics-unit-3", [("grant.requested", 0, {}), ("policy.decided", 0, {"outcome": "deny"})])
    metrics.observe_events(EventBatch(events=denied, summary={"entitlement": "ent-unit-2"}), 2, lambda _: None)
    assert _value(metrics.GRANT_OUTCOMES, entitlement="ent-unit-2", outcome="denied") == 1


class _Fake:
    name = "fake-unit"

    def issue(self, grant, **kw):
        return "issued"

    def revoke(self, cred):
        raise RuntimeError("target down")

    def shared_target(self, grant):
        return None


def test_provider_calls_are_timed_by_provider_operation_and_outcome():
    reg = metrics.instrument_providers(ProviderRegistry({"fake-unit": _Fake()}))
    p = reg.get("fake-unit")
    assert p.name == "fake-unit" and p.issue(None) == "issued" and p.shared_target(None) is None
    try:
        p.revoke(None)
    except RuntimeError:
        pass
    assert _value(metrics.PROVIDER_CALLS, provider="fake-unit", operation="issue", outcome="ok") == 1
    assert _value(metrics.PROVIDER_CALLS, provider="fake-unit", operation="revoke", outcome="error") == 1
    assert _value(metrics.PROVIDER_CALLS, provider="fake-unit", operation="shared_target", outcome="ok") == 0


def test_severity_of_events():
    assert severity("credential.issue_refused") == "high"
    assert severity("revocation.failing") == "high"
    assert severity("review.finding") == "high"
    assert severity("grant.approved", {"break_glass": True}) == "high"
    assert severity("policy.decided", {"rule": "trust:signed_request"}) == "high"
    assert severity("reconciliation.drift_detected") == "warning"
    assert severity("revocation.retrying") == "warning"
    assert severity("grant.approved", {"auto_approved": True}) == "info"
    assert severity("revocation.confirmed") == "info"


def test_every_log_line_has_a_type_and_a_severity():
    """The processor configure_logging puts after add_log_level (the SIEM feed's contract)."""
    out = io.StringIO()
    processors = [structlog.processors.add_log_level, siem.type_and_severity, structlog.processors.JSONRenderer()]
    log = structlog.wrap_logger(structlog.PrintLogger(out), processors=processors)
    log.warning("payload_refused", reason="plaintext")
    log.info("identity_event", type="grant.requested", severity="info")
    log.error("checkpoint_refused")
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [(x["type"], x["severity"]) for x in lines] == [
        ("payload_refused", "warning"),
        ("grant.requested", "info"),
        ("checkpoint_refused", "high"),
    ]


def test_temporal_connection_options_for_mtls_and_cloud_api_keys(tmp_path):
    import pytest

    from jitaccess.config import Settings
    from jitaccess.config.settings import ConfigError
    from jitaccess.ops.temporal_conn import tls_options

    assert tls_options(Settings()) == {}
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_bytes(b"CERT")
    key.write_bytes(b"KEY")
    tls = tls_options(Settings(temporal_tls_cert_file=cert, temporal_tls_key_file=key))["tls"]
    assert tls.client_cert == b"CERT" and tls.client_private_key == b"KEY"
    with pytest.raises(ConfigError):
        tls_options(Settings(temporal_tls_cert_file=cert))
    assert tls_options(Settings(temporal_api_key="k")) == {"api_key": "k", "tls": True}
