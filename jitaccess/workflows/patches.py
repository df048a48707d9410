"""Every `workflow.patched()` id of the workflows, with what runs recorded before it did instead.

Grants run for hours, so workers are deployed while grants are in flight: each id keeps the old
path for histories recorded without its marker (tests/workflows/test_replay.py replays them).
"""

SIGNED_COMMANDS = "signed-commands"  # before it: starts and commands went unverified
EVIDENCE_BY_ACTIVITY = "evidence-written-by-activity"  # before it: ledger flushes by local activity
PROVIDER_EXPIRY_FROM_GRANT = "provider-expiry-from-grant"  # before it: issued without the grant's fixed window
SEARCH_ATTRIBUTES = "search-attributes"  # before it: grants never upserted their search attributes
EXTENSION_APPROVED_WHILE_BUSY = "extension-approved-while-busy"  # before it: woke at the old expiry
START_AGE_AT_START_EVENT = "start-age-at-start-event"  # before it: a start's age ran to its first task
DEADLINE_ARMED_AHEAD = "deadline-armed-ahead"  # before it: one timer to each deadline, late by the task arming it
