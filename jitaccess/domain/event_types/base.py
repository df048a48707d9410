"""The base of every typed identity event: one pydantic model per event type.

An event's *data* is the model dumped with only the fields its emitter set (`exclude_unset`),
so an event built from a model is byte-identical to the dict the same emitter wrote before the
models existed, and chains hash the same. Each model is registered under its type name; the
registry is the SIEM contract (`docs/events.md` is generated from it, versioned by
`SCHEMA_VERSION`).

Field types are the types on the wire (times are the ISO 8601 strings the emitter wrote, seconds
the int or float it wrote), so a stored event parses back and dumps to the same bytes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

# bump the minor version when a type or an optional field is added, the major one when a
# field is removed or changes meaning (SIEM rules keyed on the old shape would break)
SCHEMA_VERSION = "1.0"

Severity = Literal["info", "warning", "high"]

# shared field types (the descriptions appear in docs/events.md)
IsoTime = Annotated[str, Field(description="ISO 8601 time")]
Command = Annotated[
    dict[str, Any],
    Field(description="the signed command that caused it (target, action, body, signature); absent when unsigned"),
]
ReadBack = Annotated[str, Field(description="what reading the target back showed")]
Pending = Annotated[
    list[dict[str, Any]], Field(description="per open stage: stage, groups, have, need (votes still needed)")
]
Children = Annotated[
    list[dict[str, Any]], Field(description="the onboarding's child grants: grant_id, entitlement, state, reference")
]


class EventBody(BaseModel):
    """The data of one identity event type. A model names its type and, unless `info`, its
    severity in the SIEM feed as class keywords, and is registered by them:

        class GrantExpired(EventBody, type="grant.expired"):
            # a docstring saying when it is written
            expires_at: IsoTime

    A type whose severity depends on its data overrides `severity_of`. A class without `type`
    is a shared base of several types."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]
    SEVERITY: ClassVar[Severity] = "info"

    def __init_subclass__(cls, type: str | None = None, severity: Severity | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if severity is not None:
            cls.SEVERITY = severity
        if type is not None:
            cls.TYPE = type
            _register(cls)

    def data(self) -> dict[str, Any]:
        """What the chain records as the event's `data` (only the fields the emitter set)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def severity_of(cls, data: Mapping[str, Any]) -> Severity:
        """The severity of an event of this type carrying `data` (stored data, not parsed:
        the SIEM feed tags every line, including lines from ledgers older than the models)."""
        return cls.SEVERITY


EVENT_TYPES: dict[str, type[EventBody]] = {}


def _register(cls: type[EventBody]) -> None:
    """One model per type: a second model for a type is a mistake."""
    name = cls.TYPE
    if name in EVENT_TYPES and EVENT_TYPES[name].__qualname__ != cls.__qualname__:
        raise ValueError(f"event type {name!r} is registered twice ({EVENT_TYPES[name].__name__}, {cls.__name__})")
    EVENT_TYPES[name] = cls


def body_for(type_name: str, data: dict[str, Any]) -> EventBody:
    """Parse stored event data back into its model (raises KeyError for an unknown type)."""
    return EVENT_TYPES[type_name].model_validate(data)
