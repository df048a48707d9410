"""The typed identity events (jitaccess.domain.event_types): every event type the code writes or
a recorded history holds has a model, each model round-trips to the same bytes, severities come
from the models, and docs/events.md is generated from them."""

from __future__ import annotations

import base64
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import pytest

from jitaccess.domain.event_types import EVENT_TYPES, EventBody, body_for
from jitaccess.domain.events import canonical_json
from jitaccess.domain.onboarding import OnboardingState
from jitaccess.domain.severity import severity

ROOT = Path(__file__).resolve().parents[2]
HISTORIES = ROOT / "tests" / "fixtures" / "histories"


def _sample(annotation: Any) -> Any:
    """A value of the wire type `annotation` (the first choice of a union or Literal)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _sample(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return _sample(next(a for a in typing.get_args(annotation) if a is not type(None)))
    if origin is Literal:
        return typing.get_args(annotation)[0]
    if origin is list:
        return [_sample(typing.get_args(annotation)[0])]
    if origin is dict:
        return {"k": _sample(typing.get_args(annotation)[1])}
    return {str: "x", int: 3, float: 1.5, bool: True}.get(annotation, "x")


def sample_event(model: type[EventBody]) -> EventBody:
    return model(**{name: _sample(f.annotation) for name, f in model.model_fields.items()})


@pytest.mark.parametrize("type_name", sorted(EVENT_TYPES))
def test_each_model_round_trips_to_the_same_bytes(type_name):
    model = EVENT_TYPES[type_name]
    assert model.TYPE == type_name and model.__doc__, "each model says when it is written"
    full = sample_event(model).data()
    stored = json.loads(canonical_json(full))  # what the ledger keeps
    assert canonical_json(body_for(type_name, stored).data()) == canonical_json(full)
    required = {n: v for n, v in full.items() if model.model_fields[n].is_required()}
    assert body_for(type_name, required).data() == required, "unset optional fields stay off the wire"


def test_unknown_fields_are_refused():
    with pytest.raises(ValueError):
        body_for("grant.expired", {"expires_at": "2026-01-01T00:00:00+00:00", "secret": "x"})


def _types_in_code() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "jitaccess").rglob("*.py"):
        text = path.read_text()
        found |= set(re.findall(r'[Ee]mit\(\s*"([a-z_]+\.[a-z_]+)"', text))  # EvidenceChain.emit, lifecycle Emit
        found |= set(re.findall(r'make_event\([^)]*?"([a-z_]+\.[a-z_]+)"', text, re.S))
        found |= {m.TYPE for m in EVENT_TYPES.values() if f"{m.__name__}(" in text}
    # the types named by a value: an onboarding's end, a dry run's finding, a delivery attempt
    ended = ("denied", "approval_expired", "failed", "offboarded", "expired")
    found |= {f"onboarding.{OnboardingState(s).value}" for s in ended}
    found |= {f"reconciliation.{k}_detected" for k in ("orphan", "drift", "mismatch")}
    found |= {"notification.sent", "notification.failed"}
    return found


def _history_events() -> list[dict[str, Any]]:
    """Every identity event inside the recorded histories' payloads (record_events batches)."""
    events: list[dict[str, Any]] = []

    def walk(o: Any) -> None:
        if isinstance(o, dict):
            if isinstance(o.get("type"), str) and "prev_hash" in o and "data" in o:
                events.append(o)
            for k, v in o.items():
                if k == "data" and isinstance(v, str):
                    try:
                        walk(json.loads(base64.b64decode(v)))
                    except ValueError:
                        pass
                else:
                    walk(v)
        elif isinstance(o, list):
            for x in o:
                walk(x)

    for path in HISTORIES.glob("*.json"):
        walk(json.loads(path.read_text()))
    return events


def test_every_event_type_in_the_code_has_a_model():
    assert _types_in_code() - set(EVENT_TYPES) == set()
    assert len(_types_in_code()) > 40


def test_every_recorded_event_parses_and_dumps_to_the_same_data():
    events = _history_events()
    assert len({e["type"] for e in events}) >= 10
    for ev in events:
        assert body_for(ev["type"], ev["data"]).data() == ev["data"], ev["type"]


@pytest.mark.parametrize(
    ("type_name", "data", "expected"),
    [
        ("credential.issue_refused", {}, "high"),
        ("revocation.failing", {}, "high"),
        ("review.finding", {}, "high"),
        ("reconciliation.mismatch_detected", {}, "high"),
        ("reconciliation.orphan_revoke_failed", {}, "high"),
        ("grant.approved", {"break_glass": True}, "high"),
        ("grant.requested", {"break_glass": True}, "high"),
        ("grant.requested", {"break_glass": False}, "info"),
        ("policy.decided", {"rule": "trust:signed_request"}, "high"),
        ("policy.decided", {"rule": "entitlement:x"}, "info"),
        ("reconciliation.drift_detected", {}, "warning"),
        ("approval.escalated", {}, "warning"),
        ("notification.failed", {}, "warning"),
        ("notification.sent", {}, "info"),
        ("grant.expired", {}, "info"),
        ("no.such_type", {}, "info"),
    ],
)
def test_severity_comes_from_the_model(type_name, data, expected):
    assert severity(type_name, data) == expected


def test_docs_events_md_is_generated_from_the_models():
    from jitaccess.domain.event_types import schema

    assert (ROOT / "docs" / "events.md").read_text() == schema.markdown(), (
        "docs/events.md is out of date: jitaccess evidence schema --format markdown > docs/events.md"
    )


def test_the_json_schema_names_every_type_with_its_severity():
    from typer.testing import CliRunner

    from jitaccess.cli import app

    out = CliRunner().invoke(app, ["evidence", "schema", "--format", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert set(doc["events"]) == set(EVENT_TYPES) and doc["version"]
    assert doc["events"]["revocation.failing"]["severity"] == "high"
    assert doc["events"]["grant.expired"]["data"]["required"] == ["expires_at"]
    assert CliRunner().invoke(app, ["evidence", "schema", "--format", "xml"]).exit_code == 2
