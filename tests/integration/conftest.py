"""Fixtures for the suites that hold real IAM group memberships on the session's moto."""

from __future__ import annotations

import uuid

import boto3
import pytest

from jitaccess.dev.seed import seed_dev_aws
from jitaccess.providers.aws import AwsClients, IamGroupMembershipProvider
from tests.integration.iam_group_support import REGION


@pytest.fixture(scope="module")
def aws_seed(moto) -> dict[str, str]:
    return seed_dev_aws(moto.address, REGION, ["alice", "bob", "carol", "dave", "erin"])


@pytest.fixture
def iam(moto):
    return boto3.client(
        "iam",
        endpoint_url=moto.address,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def group(iam, aws_seed) -> str:
    name = f"oncall-{uuid.uuid4().hex[:8]}"
    iam.create_group(GroupName=name)
    return name


@pytest.fixture
def provider(moto, aws_seed) -> IamGroupMembershipProvider:
    return IamGroupMembershipProvider(
        AwsClients(region=REGION, endpoint_url=moto.address, access_key_id="testing", secret_access_key="testing")
    )
