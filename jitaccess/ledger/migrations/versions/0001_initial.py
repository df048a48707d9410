"""The ledger schema as it stood when migrations began: identity events, the grants projection
(with `scope`), delegations, reconciliation runs, and the shared-access hold tables.

A ledger created before migrations existed (by `metadata.create_all`) is adopted: tables that exist
are left as they are, a `grants` table without `scope` gets the column, and the version is stamped.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    have = set(sa.inspect(op.get_bind()).get_table_names())

    if "identity_events" not in have:
        op.create_table(
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
        )
        op.create_index("ix_identity_events_grant_id", "identity_events", ["grant_id"])
        op.create_index("ix_identity_events_type", "identity_events", ["type"])

    if "grants" not in have:
        op.create_table(
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
        )
        op.create_index("ix_grants_state", "grants", ["state"])
        op.create_index("ix_grants_requester", "grants", ["requester"])
    elif "scope" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("grants")}:
        op.add_column("grants", sa.Column("scope", sa.JSON))

    if "delegations" not in have:
        op.create_table(
            "delegations",
            sa.Column("delegation_id", sa.String(80), primary_key=True),
            sa.Column("delegator", sa.String(200), nullable=False),
            sa.Column("delegator_principal", sa.Text, nullable=False),
            sa.Column("delegate", sa.String(200), nullable=False),
            sa.Column("starts_at", sa.String(40), nullable=False),
            sa.Column("ends_at", sa.String(40), nullable=False),
            sa.Column("reason", sa.Text, nullable=False),
        )
        op.create_index("ix_delegations_delegate", "delegations", ["delegate"])

    if "reconciliation_runs" not in have:
        op.create_table(
            "reconciliation_runs",
            sa.Column("run_id", sa.String(160), primary_key=True),
            sa.Column("chain_id", sa.String(200), nullable=False),
            sa.Column("dry_run", sa.Boolean, nullable=False),
            sa.Column("started_at", sa.String(40), nullable=False),
            sa.Column("completed_at", sa.String(40), nullable=False),
            sa.Column("report", sa.Text, nullable=False),
        )
        op.create_index("ix_reconciliation_runs_completed_at", "reconciliation_runs", ["completed_at"])

    if "access_targets" not in have:
        op.create_table(
            "access_targets",
            sa.Column("target_key", sa.String(400), primary_key=True),
            sa.Column("lock_version", sa.Integer, nullable=False),
        )

    if "access_holds" not in have:
        op.create_table(
            "access_holds",
            sa.Column("target_key", sa.String(400), primary_key=True),
            sa.Column("grant_id", sa.String(160), primary_key=True),
            sa.Column("acquired_at", sa.String(40), nullable=False),
        )


def downgrade() -> None:
    raise NotImplementedError("the ledger is evidence: its schema is never downgraded")
