"""Refusals: an action the rules refuse, with a stable rule code and a message in words."""

from __future__ import annotations

from enum import StrEnum


class RefusalKind(StrEnum):
    forbidden = "forbidden"  # the actor may not do this (HTTP 403)
    conflict = "conflict"  # not in this state / already done (HTTP 409)
    gone = "gone"  # the thing asked for no longer exists (HTTP 410)
    invalid = "invalid"  # the request breaks policy limits (HTTP 422)


class Refusal(Exception):
    """An action the rules refuse; `rule` is a stable code, `message` says why in words."""

    def __init__(self, kind: RefusalKind, rule: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.rule = rule
        self.message = message
