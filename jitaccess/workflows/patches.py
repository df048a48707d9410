"""Every `workflow.patched()` id of the workflows, with what runs recorded before it did instead.

Grants run for hours, so workers are deployed while grants are in flight: each id keeps the old
path for histories recorded without its marker (tests/workflows/test_replay.py replays them).

Workflow code asks `patched(ID)` here, never `workflow.patched` directly: a run started on this
release records one marker, `BASELINE`, for every id in `IN_BASELINE`. Each marker costs a history
event and, since the SDK upserts `TemporalChangeVersion` beside it, a visibility write — five of
each per grant before the first baseline, the floor's Temporal having none. Runs recorded with an
older baseline answer by it (and ids it lacks by their own markers); runs recorded without any, by
each id's own marker, as before. A release that adds an id adds a new baseline holding it and every
id before it; a run of the new release cannot be replayed by a worker of the release before either
way (its new path is new commands), and `JITACCESS_RECORD_PATCH_BASELINE=false` keeps each id's own
marker during a rolling upgrade (workers/factory.py).
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

# before it: the last ledger flush by an activity, and update and signal handlers never waited for a provider's answer
LAST_EVENTS_FLUSHED_LOCALLY = "last-events-flushed-locally"

BASELINE_2026_12 = "baseline-2026-12"
IN_BASELINE_2026_12 = frozenset(
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
BASELINE = "baseline-2026-12b"  # every id above at once, for runs started after it
IN_BASELINE = IN_BASELINE_2026_12 | {LAST_EVENTS_FLUSHED_LOCALLY}
# the baselines of earlier releases, newest first: runs recorded with one replay by it
OLDER_BASELINES = ((BASELINE_2026_12, IN_BASELINE_2026_12),)
BASELINES = frozenset({BASELINE, *(b for b, _ in OLDER_BASELINES)})


def patched(patch_id: str) -> bool:
    """`workflow.patched(patch_id)`, answered by a baseline's one marker where the run has it.

    The SDK memoizes each answer for the run, so each baseline is decided once, at its first call:
    a new run records the newest; a run replaying a history without it answers by the baseline it
    has, and every id no baseline of it holds by that id's own marker."""
    for baseline, ids in ((BASELINE, IN_BASELINE), *OLDER_BASELINES):
        if patch_id in ids and workflow.patched(baseline):
            return True
    return workflow.patched(patch_id)
