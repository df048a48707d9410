"""Fixtures for the integration suites: an empty ledger database (SQLite, then PostgreSQL), and the
IAM group memberships held on the session's moto."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest

from jitaccess.dev.seed import seed_dev_aws
from jitaccess.dev.servers import start_temporal
from jitaccess.providers.aws import AwsClients, IamGroupMembershipProvider
from tests.integration.iam_group_support import REGION
from tests.support import throwaway_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_ledger_url(request, tmp_path) -> Iterator[str]:
    """An empty database for a ledger: a SQLite file, then a fresh PostgreSQL database (skipped
    when PostgreSQL is not reachable). The schema is not there yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
        return
    with throwaway_postgres("jitaccess_ledger") as db:
        yield db.url


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


@pytest.fixture(scope="session")
def one_partition_temporal(stack_dir):
    """A Temporal dev server whose task queues have one partition: task-queue priority holds within
    a partition, and a poll lands on any, so on it the order of a backlog is exact."""
    partitions = {"matching.numTaskqueueReadPartitions": 1, "matching.numTaskqueueWritePartitions": 1}
    srv = start_temporal(stack_dir / "one-partition", dynamic_config=partitions)
    yield srv
    srv.stop()
