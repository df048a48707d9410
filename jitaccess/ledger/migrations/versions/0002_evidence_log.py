"""The global event log and its signed checkpoints (jitaccess.ledger.evidence_log): each identity
event's position in the log (assigned by the checkpointer, never by writers) with its hash and
Merkle leaf hash, and the Ed25519-signed checkpoints over it. Existing events join the log at the
first checkpoint.
"""

from __future__ import annotations

import sqlalchemy as sa

from jitaccess.ledger.migrations.ddl import create_table_once, existing_tables

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    have = existing_tables()
    create_table_once(
        have,
        "evidence_log",
        sa.Column("log_index", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("grant_id", sa.String(160), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("event_hash", sa.String(64), nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("event_id", name="uq_evidence_log_event_id"),
        indexes={"ix_evidence_log_grant_id": ["grant_id"]},
    )
    create_table_once(
        have,
        "evidence_checkpoints",
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("origin", sa.String(100), nullable=False),
        sa.Column("tree_size", sa.BigInteger, nullable=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.String(40), nullable=False),
        sa.Column("prev_checkpoint_hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(200), nullable=False),
        sa.Column("frontier", sa.Text, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("the ledger is evidence: its schema is never downgraded")
