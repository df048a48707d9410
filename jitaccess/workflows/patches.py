"""Every `workflow.patched()` id of the workflows, with what runs recorded before it did instead.

Grants run for hours, so workers are deployed while grants are in flight: each id keeps the old
path for histories recorded without its marker (tests/workflows/test_replay.py replays them).

Workflow code asks `patched(ID)` here, never `workflow.patched` directly: a run started on this
release records one marker, `BASELINE`, for every id in `IN_BASELINE`. Each marker costs a history
event and, since the SDK upserts `TemporalChangeVersion` beside it, a visibility write — five of
each per grant before the baseline, the floor's Temporal having none. Runs recorded without the
baseline's marker answer each id by its own marker, as before. A new id is added on its own
(asked with `workflow.patched` through `patched` below, outside the baseline) and folded into a
later baseline only once no run recorded without it can still replay.
"""

from __future__ import annotations

from temporalio import workflow

SIGNED_COMMANDS = "signed-commands"  # before it: starts and commands went unverified
EVIDENCE_BY_ACTIVITY = "evidence-written-by-activity"  # before it: ledger flushes by local activity
PROVIDER_EXPIRY_FROM_GRANT = "provider-expiry-from-grant"  # before it: issued without the grant's fixed window
SEARCH_ATTRIBUTES = "search-attributes"  # before it: grants never upserted their search attributes
EXTENSION_APPROVED_WHILE_BUSY = "extension-approved-while-busy"  # before it: woke at the old expiry
START_AGE_AT_START_EVENT = "start-age-at-start-event"  # before it: a start's age ran to its first task
DEADLINE_ARMED_AHEAD = "deadline-armed-ahead"  # before it: one timer to each deadline, late by the task arming it

BASELINE = "baseline-2026-12"  # every id above at once, for runs started after it
IN_BASELINE = frozenset(
    {
        SIGNED_COMMANDS,
        EVIDENCE_BY_ACTIVITY,
        PROVIDER_EXPIRY_FROM_GRANT,
        SEARCH_ATTRIBUTES,
        EXTENSION_APPROVED_WHILE_BUSY,
        START_AGE_AT_START_EVENT,
        DEADLINE_ARMED_AHEAD,
    }
)


def patched(patch_id: str) -> bool:
    """`workflow.patched(patch_id)`, answered by the baseline's one marker where the run has it.

    The SDK memoizes each answer for the run, so the baseline is decided once, at the first call:
    a run replaying a history without its marker answers every id by that id's own marker."""
    if patch_id in IN_BASELINE and workflow.patched(BASELINE):
        return True
    return workflow.patched(patch_id)
