"""What leaves a backlog in Temporal's matching first: task-queue priority keys (1 first … 5 last;
unset is the server's default, 3). A backlog forms when every worker slot is taken, e.g. a burst of
requests while a provider answers slowly. Priority holds within each task-queue partition
(docs/operations.md, "Break-glass first; removal before issue")."""

from __future__ import annotations

from temporalio.common import Priority

# Someone's incident: a break-glass grant's tasks (its first workflow task, and its activities,
# which inherit it) leave a backlog of routine requests first (api/gateway.py).
BREAK_GLASS_PRIORITY = Priority(priority_key=1)

# Taking access away never waits behind giving it: a revoke, a failed issue's clean-up and a
# reconciliation's revoke are scheduled at the highest priority, so a backlog of issues (slots full
# behind a slow provider) does not hold up a revoke, its read-back and its evidence. (The access
# ends on time regardless, by the provider's TTL or the expiry backstop.) Ties with break-glass
# grants go first come, first served.
REMOVAL_PRIORITY = Priority(priority_key=1)
