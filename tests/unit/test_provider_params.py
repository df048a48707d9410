"""Typed provider params: every provider type declares a model, the catalogue is checked against
it when it loads (`jitaccess catalog check`, workers, the API), and the providers parse the same
dict through the same model. The params stay a plain dict in the catalogue, so its policy
version (and every workflow history) is unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from jitaccess.cli import app
from jitaccess.config import load_catalogue
from jitaccess.config.settings import EXAMPLES, ConfigError
from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.provider_params import PROVIDER_PARAMS, params_problems
from jitaccess.providers.aws import IamGroupMembershipProvider, IdentityCenterAssignmentProvider, StsRoleSessionProvider
from jitaccess.providers.vault_approle import VaultAppRoleSecretIdProvider
from jitaccess.providers.vault_database import VaultDatabaseCredentialsProvider
from jitaccess.providers.vault_token import VaultTokenProvider

ARN = "arn:aws:iam::123456789012:role/deploy"
BIG_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": f"s3:GetObject{i}", "Resource": "*"} for i in range(60)],
}


def catalogue_with(tmp_path: Path, provider: dict) -> Path:
    raw = yaml.safe_load((EXAMPLES / "catalogue.yaml").read_text())
    raw["entitlements"][0]["provider"] = provider
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_every_provider_declares_the_model_the_catalogue_checks():
    providers = [
        VaultTokenProvider,
        VaultAppRoleSecretIdProvider,
        VaultDatabaseCredentialsProvider,
        IdentityCenterAssignmentProvider,
        IamGroupMembershipProvider,
        StsRoleSessionProvider,
    ]
    assert {p.name: p.params_model for p in providers} == PROVIDER_PARAMS


def test_the_example_catalogue_is_valid_and_its_version_unchanged():
    raw = yaml.safe_load((EXAMPLES / "catalogue.yaml").read_text())
    loaded = load_catalogue(EXAMPLES / "catalogue.yaml")
    assert loaded.version == Catalogue.model_validate(raw).version  # validated alongside, never rewritten
    assert loaded.model_dump(mode="json") == Catalogue.model_validate(raw).model_dump(mode="json")


def test_a_typo_fails_the_load_naming_entitlement_and_field(tmp_path):
    path = catalogue_with(tmp_path, {"type": "vault_token", "params": {"polices": ["jit-platform-read"]}})
    with pytest.raises(ConfigError) as ei:
        load_catalogue(path)
    msg = str(ei.value)
    assert "entitlement secrets-readonly: provider vault_token: params.polices: unknown parameter" in msg
    assert "params.policies: Field required" in msg


def test_an_unknown_provider_type_fails_the_load(tmp_path):
    path = catalogue_with(tmp_path, {"type": "vault_tokn", "params": {"policies": ["p"]}})
    with pytest.raises(ConfigError, match="unknown provider type 'vault_tokn'"):
        load_catalogue(path)


@pytest.mark.parametrize(
    "provider, params, field",
    [
        ("vault_token", {"policies": []}, "params.policies"),
        ("vault_token", {"policies": "p"}, "params.policies"),
        ("vault_approle", {"role_name": "../sys", "policies": ["p"]}, "params.role_name"),
        ("vault_database", {"role": 5}, "params.role"),
        ("aws_identity_center", {"permission_set": "P", "account_id": "12345"}, "params.account_id"),
        ("aws_iam_group", {"group": "bad group!"}, "params.group"),
        ("aws_sts_session", {"role_arn": "not-an-arn"}, "params.role_arn"),
        ("aws_sts_session", {"role_arn": ARN, "max_session_seconds": True}, "params.max_session_seconds"),
        ("aws_sts_session", {"role_arn": ARN, "session_policy": {"Statement": [{"Action": "*"}]}}, "Effect"),
        ("aws_sts_session", {"role_arn": ARN, "session_policy": "s3:*"}, "params.session_policy"),
        ("aws_sts_session", {"role_arn": ARN, "session_policy": {"Statement": []}}, "with a Statement"),
        ("aws_sts_session", {"role_arn": ARN, "session_policy": BIG_POLICY}, "at most 2048"),
        ("aws_sts_session", {"role_arn": ARN, "max_session_seconds": 50000}, "params.max_session_seconds"),
        ("vault_token", {}, "params.policies: Field required"),
        ("vault_token", {"policies": [1]}, "params.policies.0"),
        ("vault_approle", {"role_name": "payments-api", "policies": ["ok", ""]}, "params.policies.1"),
        ("vault_approle", {"policies": ["p"]}, "params.role_name: Field required"),
        ("vault_database", {"role": ["platform-readonly"]}, "params.role"),
        ("vault_database", {"role": ""}, "params.role"),
        ("aws_identity_center", {"account_id": "123456789012"}, "params.permission_set"),
        ("aws_iam_group", {}, "params.group"),
    ],
)
def test_bad_params_name_the_field(provider, params, field):
    problems = params_problems(provider, params)
    assert problems and field in " ".join(problems), problems


@pytest.mark.parametrize(
    "provider, params",
    [
        ("vault_token", {"policies": ["a", "b"]}),
        ("vault_approle", {"role_name": "payments-api", "policies": ["p"]}),
        ("vault_database", {"role": "platform-readonly"}),
        ("aws_identity_center", {"permission_set": "PlatformReadOnly", "account_id": 123456789012}),
        ("aws_iam_group", {"group": "platform-oncall"}),
        ("aws_sts_session", {"role_arn": ARN, "max_session_seconds": 900}),
    ],
)
def test_good_params_pass(provider, params):
    assert params_problems(provider, params) == []


def test_catalog_check_cli(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["catalog", "check", str(EXAMPLES / "catalogue.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "OK" in ok.output and load_catalogue(EXAMPLES / "catalogue.yaml").version in ok.output
    bad = catalogue_with(tmp_path, {"type": "aws_iam_group", "params": {"grop": "platform-oncall"}})
    failed = runner.invoke(app, ["catalog", "check", str(bad)])
    assert failed.exit_code == 1
    assert "entitlement secrets-readonly: provider aws_iam_group: params.grop: unknown parameter" in failed.output
