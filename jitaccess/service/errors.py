"""What a use case raises besides a domain `Refusal`: each entrypoint maps these to its own
answers (the API: jitaccess.api.errors; 404, 409 and 500 with the same bodies as ever)."""

from __future__ import annotations

from jitaccess.domain.refusals import Refusal, RefusalKind


class RequestRefused(Refusal):
    """A refused action, with what the caller needs to act on it (reason codes, valid IDs, ...)."""

    def __init__(self, kind: RefusalKind, rule: str, message: str, **details: object) -> None:
        super().__init__(kind, rule, message)
        self.details = details

    @classmethod
    def with_details(cls, kind: RefusalKind, rule: str, message: str, details: dict[str, object]) -> RequestRefused:
        """For details whose names clash with the parameters (e.g. the policy `rule` that refused)."""
        refused = cls(kind, rule, message)
        refused.details = details
        return refused


class NotFound(Exception):
    """No such object, or one the caller may not read (the two answers are the same)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UpdateFailed(Exception):
    """A workflow update failed for a reason other than a rule's refusal."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RunFailed(Exception):
    """A workflow the caller waited for (a reconciliation run) failed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def hidden(object_id: str) -> NotFound:
    """What a caller who may not read `object_id` gets: exactly the answer for no such object."""
    return NotFound(f"no grant {object_id[:80]}")
