"""What each provider type's `params` in the catalogue must look like.

The catalogue keeps `provider.params` a plain dict: its JSON is part of the policy version and
of every grant workflow's history, so it never changes shape. These models check that dict
alongside: when the catalogue loads (jitaccess.config.load_catalogue, so `jitaccess catalog
check` and every worker and API start) and again when a provider issues (it parses the same
dict through the same model), so the two can never disagree about what a provider needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from jitaccess.domain.catalogue import Catalogue

# a Vault name used as a path segment (AppRole, database role)
VAULT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# AWS name charset for IAM user / group names, RoleSessionName and SourceIdentity
AWS_NAME = re.compile(r"^[\w+=,.@-]+$")
ACCOUNT_ID = re.compile(r"^\d{12}$")
ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]{1,64})$")
STS_MIN_SECONDS, STS_MAX_SECONDS = 900, 43200
SESSION_POLICY_MAX_CHARS = 2048  # AssumeRole's plaintext Policy limit

PolicyName = Annotated[str, Field(min_length=1)]


def aws_name_problem(value: str, max_len: int, min_len: int = 1) -> str | None:
    """Why `value` is not a valid AWS name of min_len..max_len characters; None when it is."""
    if min_len <= len(value) <= max_len and AWS_NAME.match(value):
        return None
    return f"{value!r} is not a valid AWS name ({min_len}-{max_len} characters of letters, digits and +=,.@_-)"


def _vault_name(value: str, what: str) -> str:
    if not VAULT_NAME.match(value):
        raise ValueError(f"must name {what} (letters, digits, . _ -; at most 128 characters)")
    return value


class ProviderParams(BaseModel):
    """Base of every provider's params model: unknown keys are errors (a typo must not pass)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class VaultTokenParams(ProviderParams):
    policies: list[PolicyName] = Field(min_length=1)


class VaultAppRoleParams(ProviderParams):
    role_name: str
    policies: list[PolicyName] = Field(min_length=1)

    @field_validator("role_name")
    @classmethod
    def _role(cls, v: str) -> str:
        return _vault_name(v, "the service's AppRole")


class VaultDatabaseParams(ProviderParams):
    role: str

    @field_validator("role")
    @classmethod
    def _role(cls, v: str) -> str:
        return _vault_name(v, "a Vault database role")


class IdentityCenterParams(ProviderParams):
    permission_set: str = Field(min_length=1, description="a permission set name or ARN")
    account_id: str

    @field_validator("account_id", mode="before")
    @classmethod
    def _account(cls, v: Any) -> Any:
        v = str(v) if isinstance(v, int) and not isinstance(v, bool) else v
        if not isinstance(v, str) or not ACCOUNT_ID.match(v):
            raise ValueError(f"must be an AWS account ID of 12 digits, got {v!r}")
        return v


class IamGroupParams(ProviderParams):
    group: str

    @field_validator("group")
    @classmethod
    def _group(cls, v: str) -> str:
        problem = aws_name_problem(v, 128)
        if problem:
            raise ValueError(f"IAM group name {problem}")
        return v


class StsSessionParams(ProviderParams):
    role_arn: str
    session_policy: dict[str, Any] | None = None
    max_session_seconds: StrictInt = Field(default=3600, ge=STS_MIN_SECONDS, le=STS_MAX_SECONDS)

    @field_validator("role_arn")
    @classmethod
    def _arn(cls, v: str) -> str:
        if not ROLE_ARN.match(v):
            raise ValueError(f"must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME), got {v!r}")
        return v

    @field_validator("session_policy")
    @classmethod
    def _policy(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        statements = v.get("Statement")
        if not isinstance(statements, (list, dict)) or not statements:
            raise ValueError("must be an IAM policy document with a Statement")
        for st in statements if isinstance(statements, list) else [statements]:
            if not isinstance(st, dict) or st.get("Effect") not in ("Allow", "Deny"):
                raise ValueError(f"every statement needs Effect Allow or Deny: {st!r}")
        size = len(json.dumps(v, separators=(",", ":")))
        if size > SESSION_POLICY_MAX_CHARS:
            raise ValueError(f"is {size} characters; AssumeRole accepts at most {SESSION_POLICY_MAX_CHARS}")
        return v

    @property
    def account_id(self) -> str:
        m = ROLE_ARN.match(self.role_arn)
        assert m is not None  # checked above
        return m.group(1)

    @property
    def role_name(self) -> str:
        m = ROLE_ARN.match(self.role_arn)
        assert m is not None  # checked above
        return m.group(2)


# provider type (ProviderSpec.type, Provider.name) -> what its params must be
PROVIDER_PARAMS: dict[str, type[ProviderParams]] = {
    "vault_token": VaultTokenParams,
    "vault_approle": VaultAppRoleParams,
    "vault_database": VaultDatabaseParams,
    "aws_identity_center": IdentityCenterParams,
    "aws_iam_group": IamGroupParams,
    "aws_sts_session": StsSessionParams,
}


def describe(e: ValidationError, model: type[ProviderParams] | None = None) -> list[str]:
    """A params ValidationError as one `params.<field>: <problem>` line per problem."""
    lines = []
    for err in e.errors():
        where = ".".join(str(p) for p in ("params", *err["loc"]))
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and model is not None:
            msg = f"unknown parameter (this provider takes: {', '.join(model.model_fields)})"
        elif err["type"] not in ("missing", "value_error"):
            got = repr(err.get("input"))
            msg += f" (got {got[:60] + '…' if len(got) > 60 else got})"
        lines.append(f"{where}: {msg}")
    return lines


def params_problems(provider_type: str, params: Mapping[str, Any]) -> list[str]:
    """What is wrong with `params` for a provider of this type: [] when nothing is."""
    model = PROVIDER_PARAMS.get(provider_type)
    if model is None:
        return [f"unknown provider type {provider_type!r} (known: {', '.join(sorted(PROVIDER_PARAMS))})"]
    try:
        model.model_validate(dict(params))
    except ValidationError as e:
        return describe(e, model)
    return []


def catalogue_params_problems(catalogue: Catalogue) -> list[str]:
    """Every entitlement's provider params checked against its type's model: one line per
    problem, naming the entitlement, the provider type and the field; [] when all are valid."""
    return [
        f"entitlement {e.id}: provider {e.provider.type}: {problem}"
        for e in catalogue.entitlements
        for problem in params_problems(e.provider.type, e.provider.params)
    ]
