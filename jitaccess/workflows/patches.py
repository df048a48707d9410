"""The workflows' `workflow.patched()` ids, and one marker standing for all of them in new runs.

Each `workflow.patched(id)` of a run started fresh records a marker, and the SDK adds an upsert of
the `TemporalChangeVersion` search attribute beside it: two history events and one visibility write
per patch, four on a grant's way to `active`. So a run started by this code records one marker,
`FOLDED`, and every patch folded into it answers True without a marker of its own. Runs started before
`FOLDED` existed replay their own markers patch by patch: `FOLDED` is asked first, at the run's
first patch check, and answers False when replaying a history without it (memoized for the run).

A patch added later must NOT join `FOLDED_PATCHES`: runs that recorded `FOLDED` were started
without it. Give it its own id (it records its own marker) until a new fold replaces this one.
"""

from __future__ import annotations

from temporalio import workflow

SIGNED_COMMANDS = "signed-commands"  # histories recorded before it start unverified
EVIDENCE_BY_ACTIVITY = "evidence-written-by-activity"  # before it: ledger flushes by local activity
PROVIDER_EXPIRY_FROM_GRANT = "provider-expiry-from-grant"  # before it: issued without the fixed window
SEARCH_ATTRIBUTES = "search-attributes"  # before it: grants never upserted their search attributes
EXTENSION_APPROVED_WHILE_BUSY = "extension-approved-while-busy"  # before it: woke at the old expiry
START_AGE_AT_START_EVENT = "start-age-at-start-event"  # before it: a start's age counted to its first task

FOLDED = "patches-folded-2026-12"
FOLDED_PATCHES = frozenset(
    {
        SIGNED_COMMANDS,
        EVIDENCE_BY_ACTIVITY,
        PROVIDER_EXPIRY_FROM_GRANT,
        SEARCH_ATTRIBUTES,
        EXTENSION_APPROVED_WHILE_BUSY,
        START_AGE_AT_START_EVENT,  # new with the fold: no run recorded the fold without it
    }
)


def patched(patch_id: str) -> bool:
    """`workflow.patched(patch_id)`, answered by the one `FOLDED` marker where the run recorded it."""
    if patch_id in FOLDED_PATCHES and workflow.patched(FOLDED):
        return True
    return workflow.patched(patch_id)
