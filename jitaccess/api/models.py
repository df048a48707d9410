"""Request bodies and response views of the HTTP API."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

# Durations the API can represent at all (each entitlement then has its own min and max): whole
# seconds, at most this long. Anything else is a 422 that says so, never an overflow.
MAX_DURATION_SECONDS = 10 * 365 * 24 * 3600
_ALLOWED = f"give ISO 8601 like PT15M, or a whole number of seconds from 1 to {MAX_DURATION_SECONDS}"


def _duration(v: object) -> object:
    """Accept ISO 8601 (PT15M, P1DT2H) or a number of seconds; say so when it's neither."""
    if v is None or isinstance(v, timedelta):
        return v
    if isinstance(v, bool):
        raise ValueError(f"duration must be ISO 8601 or a number of seconds: {_ALLOWED}")
    if isinstance(v, (int, float)):
        if not math.isfinite(v) or abs(v) > MAX_DURATION_SECONDS:
            raise ValueError(f"duration {v!r} is out of range: {_ALLOWED}")
        return timedelta(seconds=v)
    if isinstance(v, str):
        s = v.strip()
        if s.isascii() and s.isdigit():
            if len(s) > 12 or int(s) > MAX_DURATION_SECONDS:
                raise ValueError(f"duration {s[:20]}{'...' if len(s) > 20 else ''} is out of range: {_ALLOWED}")
            return timedelta(seconds=int(s))
        if s.upper().startswith("P") and len(s) <= 64:
            try:
                return _ISO.validate_python(s.upper())
            except ValidationError:
                pass
    shown = repr(v)[:40] + ("..." if len(repr(v)) > 40 else "")
    raise ValueError(f"duration {shown} is not ISO 8601 or a number of seconds: {_ALLOWED}")


def _representable(v: timedelta | None) -> timedelta | None:
    if v is None:
        return v
    if abs(v) > timedelta(seconds=MAX_DURATION_SECONDS):
        raise ValueError(f"duration is out of range: {_ALLOWED}")
    if v % timedelta(seconds=1):
        raise ValueError(f"duration {v.total_seconds()}s is not a whole number of seconds: {_ALLOWED}")
    return v


_ISO = TypeAdapter(timedelta)
Duration = Annotated[timedelta | None, BeforeValidator(_duration), AfterValidator(_representable)]


class GrantRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entitlement: str = Field(min_length=1, max_length=64, examples=["secrets-readonly"])
    duration: Duration = Field(
        default=None, examples=["PT15M", 900], description="ISO 8601 or seconds; default from the catalogue"
    )
    reason: str = Field(default="", max_length=2000)
    ticket: str | None = Field(default=None, max_length=200)
    request_id: str | None = Field(
        default=None,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]{1,128}$",
        description="client-chosen idempotency key: resubmitting returns the same grant",
    )
    break_glass: bool = Field(default=False, description="emergency access: issued at once, alerted, reviewed after")
    incident: str | None = Field(
        default=None, max_length=200, description="incident reference, required for break-glass"
    )


class CommentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=2000)


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class ExtendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration: Duration = Field(examples=["PT30M", 1800], description="how much longer; ISO 8601 or seconds")
    reason: str = Field(min_length=1, max_length=2000)


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["justified", "not_justified"]
    notes: str = Field(default="", max_length=4000)


class DelegationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delegate: str = Field(min_length=1, max_length=200)
    duration: Duration = Field(default=None, examples=["P1D"], description="window length from starts_at (default now)")
    starts_at: AwareDatetime | None = Field(default=None, description="with a time zone; now or later (default now)")
    ends_at: AwareDatetime | None = Field(default=None, description="with a time zone")
    reason: str = Field(min_length=1, max_length=2000)
