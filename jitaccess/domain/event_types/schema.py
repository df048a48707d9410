"""The SIEM contract, generated from the event models: `docs/events.md` (markdown) and a JSON
document with each type's JSON Schema (`jitaccess evidence schema --format markdown|json`).

Pure: the text depends only on the models, so a test can hold docs/events.md to them."""

from __future__ import annotations

import sys
import types
import typing
from typing import Any, Literal

from pydantic.fields import FieldInfo

from jitaccess.domain.event_types import EVENT_TYPES, SCHEMA_VERSION, EventBody
from jitaccess.domain.events import IdentityEvent

ENVELOPE = {
    "event_id": "`<chain key>:<seq>`",
    "grant_id": "the chain's key: a grant, onboarding, reconciliation run or delegation ID",
    "seq": "1, 2, ... along the chain",
    "type": "the event type (a section below)",
    "at": "workflow time (Temporal's clock), UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ`; for an event made from a provider's answer (`credential.issued`, `fulfilment.verified`, `revocation.confirmed`, ...), when the activity had that answer, never before the previous event's",
    "actor": "who acted: `id`, `kind` (human, service, system), `role`",
    "data": "the type's fields below: only those its writer set (a field may be absent, or null)",
    "prev_hash": "the previous event's `hash` (64 zeros for the first)",
    "hash": "SHA-256 of the canonical JSON of every other field",
}

INTRO = """\
Every step of a grant, an onboarding, a reconciliation run and a delegation is an identity event
on a SHA-256 hash chain in the ledger, the same events the SIEM feed (`jitaccess.identity_events`
log lines), `jitaccess export --format jsonl|ocsf|cloudevents` and evidence bundles carry.
This page is generated from the event models (`jitaccess/domain/event_types/`) by
`jitaccess evidence schema --format markdown > docs/events.md`; `--format json` gives each type's
JSON Schema. A test fails when it is out of date.

Versioning: the minor version grows when a type or an optional field is added, the major one when
a field is removed or changes meaning. Consumers should ignore types they do not know.

Severity (`severity` on each SIEM line): `high` for access someone may hold that nobody approved,
or a control that was attacked or failed; `warning` for what needs a look; `info` otherwise."""


def _type_name(annotation: Any) -> str:
    """The wire type of a field, in JSON terms."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is Literal:
        return " or ".join(f'"{a}"' for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return "object"
    names = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
    return names.get(annotation, "any")


def _description(f: FieldInfo) -> str:
    """The field's description, or that of the shared type it is an optional of (`Command | None`)."""
    text = f.description
    for arg in typing.get_args(f.annotation) if text is None else ():
        meta = typing.get_args(arg)[1:] if typing.get_origin(arg) is typing.Annotated else ()
        text = next((m.description for m in meta if isinstance(m, FieldInfo) and m.description), text)
    return (text or "").replace("|", "\\|")


def _severity(model: type[EventBody]) -> str:
    overridden = any("severity_of" in vars(c) for c in model.__mro__[: model.__mro__.index(EventBody)])
    return f"{model.SEVERITY} (depends on the data)" if overridden else model.SEVERITY


def _section(model: type[EventBody]) -> list[str]:
    lines = [f"### `{model.TYPE}`", "", " ".join((model.__doc__ or "").split()), "", f"Severity: {_severity(model)}."]
    if model.model_fields:
        lines += ["", "| field | type | required | meaning |", "|---|---|---|---|"]
        for name, f in model.model_fields.items():
            required = "yes" if f.is_required() else "no"
            lines.append(f"| `{name}` | {_type_name(f.annotation)} | {required} | {_description(f)} |")
    return [*lines, ""]


def _groups() -> dict[str, list[type[EventBody]]]:
    """The models by the module that declares them (a module is one area: grant, credential...)."""
    groups: dict[str, list[type[EventBody]]] = {}
    for name in sorted(EVENT_TYPES):
        model = EVENT_TYPES[name]
        groups.setdefault(model.__module__, []).append(model)
    return groups


def markdown() -> str:
    lines = [f"# Identity events (schema {SCHEMA_VERSION})", "", INTRO, "", "## The envelope", ""]
    lines += ["| field | meaning |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in ENVELOPE.items()]
    lines.append("")
    for module, models in _groups().items():
        doc = " ".join((sys.modules[module].__doc__ or "").split())
        area = module.rsplit(".", 1)[-1]
        lines += [f"## {area.capitalize()}", "", doc, ""]
        for model in models:
            lines += _section(model)
    return "\n".join(lines).rstrip() + "\n"


def json_schema() -> dict[str, Any]:
    return {
        "title": "jitaccess identity events",
        "version": SCHEMA_VERSION,
        "envelope": IdentityEvent.model_json_schema(),
        "events": {
            name: {"severity": _severity(model), "data": model.model_json_schema()}
            for name, model in sorted(EVENT_TYPES.items())
        },
    }
