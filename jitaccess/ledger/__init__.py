"""The evidence store: append-only identity events plus a per-grant summary row."""

from jitaccess.ledger import backstop as _backstop  # noqa: F401  (registers its table)
from jitaccess.ledger import evidence_log as _evidence_log  # noqa: F401  (registers its tables)
from jitaccess.ledger.store import Ledger

__all__ = ["Ledger"]
