"""Request bodies and response views of the HTTP API."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _duration(v: object) -> object:
    """Accept ISO 8601 (PT15M, P1DT2H) or a number of seconds; say so when it's neither."""
    if v is None or isinstance(v, timedelta):
        return v
    if isinstance(v, bool):
        raise ValueError("duration must be ISO 8601 like PT15M or a number of seconds")
    if isinstance(v, (int, float)):
        return timedelta(seconds=v)
    if isinstance(v, str):
        s = v.strip()
        if s.isdigit():
            return timedelta(seconds=int(s))
        if s.upper().startswith("P"):
            return s.upper()
    raise ValueError(f"duration {v!r} is not ISO 8601 like PT15M or a number of seconds")


Duration = Annotated[timedelta | None, BeforeValidator(_duration)]


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
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    reason: str = Field(min_length=1, max_length=2000)
