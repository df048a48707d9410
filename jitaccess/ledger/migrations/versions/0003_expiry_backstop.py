"""The expiry backstop's table (jitaccess.ledger.backstop): per grant, the non-secret reference of
what was issued and the expiry it is due at, so a worker can end identity-based access at expiry
without Temporal. Live grants issued before it existed are adopted by the backstop itself.
"""

from __future__ import annotations

import sqlalchemy as sa

from jitaccess.ledger.migrations.ddl import create_table_once, existing_tables

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    create_table_once(
        existing_tables(),
        "expiry_backstop",
        sa.Column("grant_id", sa.String(160), primary_key=True),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("credential", sa.Text, nullable=False),
        sa.Column("target_key", sa.String(400)),
        sa.Column("expires_at", sa.String(40)),
        sa.Column("due", sa.Float),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("done_at", sa.String(40)),
        sa.Column("outcome", sa.String(40)),
        sa.Column("acted_by", sa.String(200)),
        sa.Column("claimed_until", sa.Float),
        indexes={"ix_expiry_backstop_pending": ["done_at", "due"]},
    )


def downgrade() -> None:
    raise NotImplementedError("the ledger is evidence: its schema is never downgraded")
