"""The base of every typed identity event: one pydantic model per event type.

An event's *data* is the model dumped with only the fields its emitter set (`exclude_unset`),
so an event built from a model is byte-identical to the dict the same emitter wrote before the
models existed, and chains hash the same. Each model is registered under its type name; the
registry is the SIEM contract (`docs/events.md` is generated from it, versioned by
`SCHEMA_VERSION`)."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

# bump the minor version when a type or an optional field is added, the major one when a
# field is removed or changes meaning (SIEM rules keyed on the old shape would break)
SCHEMA_VERSION = "1.0"


class EventBody(BaseModel):
    """The data of one identity event type. Subclasses set `TYPE` (e.g. "grant.expired") and
    declare the fields; the class docstring says when the event is written."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]

    def data(self) -> dict[str, Any]:
        """What the chain records as the event's `data` (only the fields the emitter set)."""
        return self.model_dump(mode="json", exclude_unset=True)


EVENT_TYPES: dict[str, type[EventBody]] = {}

E = TypeVar("E", bound=type[EventBody])


def event_type(cls: E) -> E:
    """Class decorator: register an event model under its `TYPE` (one model per type)."""
    name = cls.TYPE
    if name in EVENT_TYPES and EVENT_TYPES[name] is not cls:
        raise ValueError(f"event type {name!r} is registered twice ({EVENT_TYPES[name].__name__}, {cls.__name__})")
    EVENT_TYPES[name] = cls
    return cls


def body_for(type_name: str, data: dict[str, Any]) -> EventBody:
    """Parse stored event data back into its model (raises KeyError for an unknown type)."""
    return EVENT_TYPES[type_name].model_validate(data)
