"""The chaos harness's parts (bench/chaos.py is the command):

- stack.py    every piece as its own process (Temporal, OpenBao, moto, the API, two workers)
- poller.py   reads every issued credential back at its target, independently of the pipeline
- grants.py   starts the grants (as the API would) and waits until every one has ended
- inject.py   the faults: kill -9 a worker or Temporal, freeze OpenBao
- figures.py  what the run found, per provider, and which checks failed
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
ENTITLEMENTS = {  # provider -> entitlement of the example catalogue (made auto-approved here)
    "vault_token": "secrets-readonly",
    "vault_approle": "payments-api-secret-id",
    "vault_database": "db-readonly",
    "aws_iam_group": "aws-oncall-group",
    "aws_identity_center": "aws-readonly-console",
    "aws_sts_session": "aws-deploy-session",
}
ENDED = {"revoked", "issue_failed", "denied", "cancelled"}


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S.%f')[:-3]}] {msg}", flush=True)
