"""The ledger schema as it stood when migrations began: identity events, the grants projection
(with `scope`), delegations, reconciliation runs, and the shared-access hold tables.

A ledger created before migrations existed (by `metadata.create_all`) is adopted: tables that exist
are left as they are, a `grants` table without `scope` gets the column, and the version is stamped.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jitaccess.ledger.migrations.ddl import create_table_once, existing_tables

revision = "0001"
down_revision = None


def upgrade() -> None:
    have = existing_tables()
    _identity_events(have)
    _grants(have)
    _delegations(have)
    _reconciliation_runs(have)
    _holds(have)


def _identity_events(have: set[str]) -> None:
    create_table_once(
        have,
        "identity_events",
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("grant_id", sa.String(160), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("type", sa.String(80), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("actor_kind", sa.String(20), nullable=False),
        sa.Column("actor_role", sa.String(20), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("grant_id", "seq", name="uq_identity_events_grant_seq"),
        indexes={"ix_identity_events_grant_id": ["grant_id"], "ix_identity_events_type": ["type"]},
    )


def _grants(have: set[str]) -> None:
    if "grants" in have:  # made before `scope` existed: the column is added
        if "scope" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("grants")}:
            op.add_column("grants", sa.Column("scope", sa.JSON))
        return
    create_table_once(
        have,
        "grants",
        sa.Column("grant_id", sa.String(160), primary_key=True),
        sa.Column("state", sa.String(40), nullable=False),
        sa.Column("entitlement", sa.String(80), nullable=False),
        sa.Column("requester", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(40)),
        sa.Column("break_glass", sa.Boolean, nullable=False),
        sa.Column("expires_at", sa.String(40)),
        sa.Column("scope", sa.JSON),  # who may read the grant (NULL: facts unknown)
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        indexes={"ix_grants_state": ["state"], "ix_grants_requester": ["requester"]},
    )


def _delegations(have: set[str]) -> None:
    create_table_once(
        have,
        "delegations",
        sa.Column("delegation_id", sa.String(80), primary_key=True),
        sa.Column("delegator", sa.String(200), nullable=False),
        sa.Column("delegator_principal", sa.Text, nullable=False),
        sa.Column("delegate", sa.String(200), nullable=False),
        sa.Column("starts_at", sa.String(40), nullable=False),
        sa.Column("ends_at", sa.String(40), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        indexes={"ix_delegations_delegate": ["delegate"]},
    )


def _reconciliation_runs(have: set[str]) -> None:
    create_table_once(
        have,
        "reconciliation_runs",
        sa.Column("run_id", sa.String(160), primary_key=True),
        sa.Column("chain_id", sa.String(200), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("started_at", sa.String(40), nullable=False),
        sa.Column("completed_at", sa.String(40), nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        indexes={"ix_reconciliation_runs_completed_at": ["completed_at"]},
    )


def _holds(have: set[str]) -> None:
    """The shared-access hold tables (jitaccess.ledger.holds)."""
    create_table_once(
        have,
        "access_targets",
        sa.Column("target_key", sa.String(400), primary_key=True),
        sa.Column("lock_version", sa.Integer, nullable=False),
    )
    create_table_once(
        have,
        "access_holds",
        sa.Column("target_key", sa.String(400), primary_key=True),
        sa.Column("grant_id", sa.String(160), primary_key=True),
        sa.Column("acquired_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("the ledger is evidence: its schema is never downgraded")
