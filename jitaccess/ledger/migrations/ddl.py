"""What the ledger's migrations share: a table is created (with its indexes) only when it does not
exist yet, so a dev ledger made by `metadata.create_all` before migrations existed is adopted."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def existing_tables() -> set[str]:
    return set(sa.inspect(op.get_bind()).get_table_names())


def create_table_once(
    have: set[str], name: str, *columns: sa.Column | sa.UniqueConstraint, indexes: dict[str, list[str]] | None = None
) -> None:
    """Create `name` from `columns`, then each index (index name -> its columns), unless it is in `have`."""
    if name in have:
        return
    op.create_table(name, *columns)
    for index, on in (indexes or {}).items():
        op.create_index(index, name, on)
