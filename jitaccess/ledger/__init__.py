"""The evidence store: append-only identity events plus a per-grant summary row."""

from jitaccess.ledger.store import Ledger

__all__ = ["Ledger"]
