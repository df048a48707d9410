"""The checkpointer as an activity: append the events not yet logged and sign a checkpoint
(jitaccess.ledger.evidence_log.make_checkpoint), for CheckpointWorkflow on its Schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from jitaccess.ledger import Ledger
from jitaccess.ledger.evidence_log import CheckpointError, load_checkpoint_key, make_checkpoint

MAKE_CHECKPOINT = "make_checkpoint"
log = structlog.get_logger("jitaccess.checkpoint")


class CheckpointActivities:
    def __init__(self, ledger: Ledger, key_file: Path | None, export_dir: Path | None) -> None:
        self.ledger, self.key_file, self.export_dir = ledger, key_file, export_dir

    def all(self) -> list:
        return [self.make_checkpoint]

    @activity.defn(name=MAKE_CHECKPOINT)
    def make_checkpoint(self) -> dict[str, Any]:
        if self.key_file is None:
            # retryable: another worker of the fleet may hold the key
            raise ApplicationError("this worker has no JITACCESS_CHECKPOINT_KEY_FILE", type="no_checkpoint_key")
        try:
            res = make_checkpoint(self.ledger, load_checkpoint_key(self.key_file), self.export_dir)
        except CheckpointError as e:
            log.error("checkpoint_refused", reason=str(e))
            raise ApplicationError(str(e), type="checkpoint_refused", non_retryable=True) from None
        cp = res.checkpoint
        if res.created and cp is not None:
            log.info("checkpoint", number=cp.number, tree_size=cp.tree_size, root_hash=cp.root_hash, key_id=cp.key_id)
        return res.summary()
