"""The settings of a stack started on this machine (`dev up`, the chaos harness): its Temporal,
its OpenBao (root token), moto standing in for AWS, and the local PostgreSQL when reachable."""

from __future__ import annotations

from typing import Any

from jitaccess.config import Settings

AWS_REGION = "us-east-1"


def local_stack_settings(
    *,
    temporal_address: str,
    vault_addr: str,
    root_token: str,
    moto_address: str,
    aws: dict[str, str],
    postgres_dsn: str | None,
    **more: Any,
) -> Settings:
    """Settings for servers started here: moto's fixed test credentials, `aws` as seed_dev_aws made it."""
    return Settings(
        temporal_address=temporal_address,
        vault_addr=vault_addr,
        vault_token=root_token,
        aws_endpoint_url=moto_address,
        aws_region=AWS_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_sso_instance_arn=aws["instance_arn"],
        aws_identity_store_id=aws["identity_store_id"],
        postgres_verify_dsn=postgres_dsn,
        **more,
    )
