"""An IAM group entitlement on the session's moto: helpers shared by the suites that hold real
group memberships (overlapping grants, the expiry backstop); their fixtures are in conftest.py."""

from __future__ import annotations

from jitaccess.domain.catalogue import Catalogue

REGION = "us-east-1"
ENTITLEMENT = "aws-oncall"


def catalogue(group: str) -> Catalogue:
    return Catalogue.model_validate(
        {
            "entitlements": [
                {
                    "id": ENTITLEMENT,
                    "description": "Join the on-call IAM group",
                    "provider": {"type": "aws_iam_group", "params": {"group": group}},
                    "default_duration": "PT10M",
                    "max_duration": "PT1H",
                    "min_duration": "PT1S",
                    "requester_groups": ["platform"],
                    "approval": {"auto_approve": True},
                    "reason_required": True,
                }
            ]
        }
    )


def member(iam, user: str, group: str) -> bool:
    return group in [g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"]]
