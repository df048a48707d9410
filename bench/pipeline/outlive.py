"""`--outlive S`: every Vault token outlives its grant by S seconds, so the revoke at expiry removes a
live token (look up, revoke, read back), as the floor's revoke does (its tokens live TTL + 60 s).
Without it, a pipeline token ends by its own TTL at the grant's expiry and the revoke reads back one
that is already gone (issue 15 asks for both measures).

The product never issues such a token: a grant's token ends with the grant. So the bench stretches
each one, with the stack's root token, as soon as its `credential.issued` event reaches the ledger,
from a thread of its own (one renewal per grant, ~1 ms of OpenBao each)."""

from __future__ import annotations

import json
import math
import threading
from datetime import UTC, datetime

ISSUED = "credential.issued"


class TokenStretcher(threading.Thread):
    """Renews each issued token to end `outlive_s` after its grant's expiry, until stopped."""

    def __init__(self, dev: dict, outlive_s: int, poll_s: float = 0.05) -> None:
        super().__init__(name="bench-outlive", daemon=True)
        self.dev, self.outlive_s, self.poll_s = dev, outlive_s, poll_s
        self.stopping = threading.Event()
        self.renewed = 0
        self.late: list[str] = []  # reached after the token had already ended: nothing to stretch
        self.errors: list[str] = []

    def run(self) -> None:
        import hvac
        from sqlalchemy import select

        from jitaccess.ledger import Ledger
        from jitaccess.ledger.store import identity_events as ev

        vault = hvac.Client(url=self.dev["vault_addr"], token=self.dev["vault_root_token"])
        ledger = Ledger(self.dev["ledger_url"])
        seen: set[str] = set()
        query = select(ev.c.event_id, ev.c.data).where(ev.c.type == ISSUED)
        try:
            while not self.stopping.is_set():
                with ledger.engine.connect() as conn:
                    new = [(eid, data) for eid, data in conn.execute(query) if eid not in seen]
                for eid, data in new:
                    seen.add(eid)
                    self._stretch(vault, eid, json.loads(data))
                if not new:
                    self.stopping.wait(self.poll_s)
        finally:
            ledger.close()

    def _stretch(self, vault, event_id: str, data: dict) -> None:
        expires_at = datetime.fromisoformat(data["expires_at"])
        increment = math.ceil((expires_at - datetime.now(UTC)).total_seconds()) + self.outlive_s
        try:
            vault.auth.token.renew_accessor(data["reference"], increment=f"{increment}s")
            self.renewed += 1
        except Exception as e:  # the token ended before the bench reached it, or OpenBao refused
            (self.late if "invalid accessor" in str(e) else self.errors).append(f"{event_id}: {e}"[:300])

    def stop(self) -> dict:
        self.stopping.set()
        self.join(timeout=10)
        return {
            "outlive_s": self.outlive_s,
            "renewed": self.renewed,
            "late": len(self.late),
            "errors": self.errors[:5],
            "error_count": len(self.errors),
        }
