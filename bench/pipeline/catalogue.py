"""The bench's own catalogue: the example catalogue with `min_duration: PT1S` everywhere (the
examples' minimum is 60 s; the bench's grants last seconds, as the suite's do in tests/conftest.py),
plus, for `--provider iam`, one auto-approved IAM-group entitlement per grant, each on its own group
(`bench-g<i>`): overlapping grants of one membership share a hold and only the last one removes it,
so per-grant groups make every revocation real removal work at the target."""

from __future__ import annotations

from pathlib import Path

import yaml

from jitaccess.config.settings import EXAMPLES

VAULT_ENTITLEMENT = "secrets-readonly"


def iam_entitlement(i: int) -> str:
    return f"bench-iam-{i}"


def iam_group(i: int) -> str:
    return f"bench-g{i}"


def write_catalogue(path: Path, provider: str, n: int) -> Path:
    raw = yaml.safe_load((EXAMPLES / "catalogue.yaml").read_text())
    for ent in raw["entitlements"]:
        ent["min_duration"] = "PT1S"
    if provider == "iam":
        raw["entitlements"] += [
            {
                "id": iam_entitlement(i),
                "description": "bench: membership of its own IAM group",
                "provider": {"type": "aws_iam_group", "params": {"group": iam_group(i)}},
                "min_duration": "PT1S",
                "default_duration": "PT1H",
                "max_duration": "PT12H",
                "requester_groups": ["platform"],
                "approval": {"auto_approve": True},
                "reason_required": True,
            }
            for i in range(n)
        ]
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def create_iam_groups(dev: dict, n: int) -> None:
    """The N groups in the stack's moto (dev up seeds only platform-oncall)."""
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=dev["aws_endpoint"],
        region_name=dev["aws_region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    for i in range(n):
        iam.create_group(GroupName=iam_group(i))
