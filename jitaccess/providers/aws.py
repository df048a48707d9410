"""AWS providers (boto3): IAM Identity Center account assignments, IAM group
membership, and STS role sessions.

Endpoint, region and credentials come from settings (`AwsClients.from_settings`),
so the same code talks to real AWS or to moto. Each activity thread gets its own
boto3 session and clients (sessions are not thread-safe).

- `aws_identity_center`: the requester's Identity Store user (resolved by user
  name) x permission set x account. Issue = create the assignment and poll its
  creation status; revoke = delete it and poll the deletion status; both are
  confirmed with list_account_assignments. Shared access (several grants can
  yield the same assignment): a hold count guards it (ledger.holds). Nothing
  secret is handed over: the requester signs in through their existing SSO.
- `aws_iam_group`: the requester's IAM user (user name = requester id) in a
  group; confirmed with list_groups_for_user. Shared access, like the above.
- `aws_sts_session`: assume the entitlement's role for min(grant time, role max)
  (at least 900 s) with a session policy, SourceIdentity = requester and a
  `grant_id` session tag. The keys are proven with get_caller_identity and go to
  the requester only response-wrapped by Vault. STS sessions cannot be deleted:
  revocation writes an inline deny policy on the role for this grant's sessions
  ("revoke older sessions", scoped by the grant_id tag), confirmed by reading
  that policy back. The residual window is the STS expiration (`expires_at`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from jitaccess.domain.credentials import IssuedCredential, ProviderGrant, WrappedHandover
from jitaccess.providers.base import PerGrantCredentials, ProviderError, remaining_ttl
from jitaccess.providers.vault_token import VaultWrapper

# botocore logs raw response bodies (AssumeRole's carries the secret key) and signed request
# headers (a session token) at DEBUG: never let those through, whatever the root level is or
# later becomes (only an explicit level set on the "botocore" logger itself overrides this).
_botocore_log = logging.getLogger("botocore")
if _botocore_log.level < logging.INFO:  # NOTSET (inherits the root) or DEBUG
    _botocore_log.setLevel(logging.INFO)

# AWS name charset for IAM user / group names, RoleSessionName and SourceIdentity
_AWS_NAME = re.compile(r"^[\w+=,.@-]+$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]{1,64})$")

# error codes: worth retrying (throttling, transient, eventual consistency) / never worth it
_RETRYABLE_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "PriorRequestNotComplete",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "InternalServerException",
    "ServiceFailure",
    "ConflictException",
    "ConcurrentModification",
    "ConcurrentModificationException",
    "RequestTimeout",
    "RequestTimeoutException",
    "ExpiredToken",
    "ExpiredTokenException",
    "IDPCommunicationError",
    "LimitExceeded",  # e.g. the role's inline-policy budget: frees up as revocation statements expire and are pruned
}


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _is(e: Exception, *codes: str) -> TypeGuard[ClientError]:
    return isinstance(e, ClientError) and _code(e) in codes


def translate(e: Exception, action: str) -> ProviderError:
    """boto3/botocore failure -> ProviderError. Throttling, 5xx and connection failures are
    retryable; permission, validation and not-found errors are not (retrying cannot help).
    Messages carry AWS's error code and message, never request parameters or keys."""
    if isinstance(e, ProviderError):
        return e
    if isinstance(e, ClientError):
        code, msg = _code(e), e.response.get("Error", {}).get("Message", "")
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        retryable = code in _RETRYABLE_CODES or status >= 500
        return ProviderError(f"aws refused to {action}: {code}: {msg}".rstrip(": "), retryable=retryable)
    if isinstance(e, (EndpointConnectionError, BotoConnectionError)):
        return ProviderError(f"aws unreachable while trying to {action}: {e.__class__.__name__}")
    if isinstance(e, (NoCredentialsError, PartialCredentialsError)):
        return ProviderError(f"no usable AWS credentials to {action}: {e.__class__.__name__}", retryable=False)
    if isinstance(e, ParamValidationError):
        return ProviderError(f"invalid request to {action}: {e}", retryable=False)
    if isinstance(e, BotoCoreError):
        return ProviderError(f"aws error while trying to {action}: {e.__class__.__name__}: {e}")
    return ProviderError(f"aws error while trying to {action}: {e.__class__.__name__}: {e}")


class AwsClients:
    """One boto3 session (and its clients) per thread; endpoint, region and credentials from settings.

    Credentials left unset fall back to boto3's default chain (environment, profile, instance role)."""

    def __init__(
        self,
        *,
        region: str,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 15,
        max_attempts: int = 3,
    ) -> None:
        self.region, self.endpoint_url = region, endpoint_url
        self._creds = (access_key_id, secret_access_key, session_token)
        self._config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "max_attempts": max_attempts},
        )
        self._local = threading.local()

    @classmethod
    def from_settings(cls, settings: Any) -> AwsClients:
        secret = settings.aws_secret_access_key.get_secret_value() if settings.aws_secret_access_key else None
        token = settings.aws_session_token.get_secret_value() if settings.aws_session_token else None
        return cls(
            region=settings.aws_region or "us-east-1",
            endpoint_url=settings.aws_endpoint_url,
            access_key_id=settings.aws_access_key_id,
            secret_access_key=secret,
            session_token=token,
        )

    def client(self, service: str) -> Any:
        cache = getattr(self._local, "clients", None)
        if cache is None:
            key_id, secret, token = self._creds
            self._local.session = boto3.session.Session(
                aws_access_key_id=key_id,
                aws_secret_access_key=secret,
                aws_session_token=token,
                region_name=self.region,
            )
            cache = self._local.clients = {}
        if service not in cache:
            cache[service] = self._local.session.client(service, endpoint_url=self.endpoint_url, config=self._config)
        return cache[service]

    def client_with_keys(self, service: str, access_key_id: str, secret_access_key: str, session_token: str) -> Any:
        """A throw-away client signed with minted keys (to prove them), never cached."""
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name=self.region,
        )
        return session.client(service, endpoint_url=self.endpoint_url, config=self._config)


def _call(action: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except Exception as e:
        raise translate(e, action) from e


def _paginate(client: Any, op: str, key: str, action: str, **kwargs: Any) -> list[Any]:
    try:
        out: list[Any] = []
        for page in client.get_paginator(op).paginate(**kwargs):
            out.extend(page.get(key) or [])
        return out
    except Exception as e:
        raise translate(e, action) from e


def _param_str(grant: ProviderGrant, key: str, pattern: re.Pattern[str] | None = None, what: str = "") -> str:
    value = grant.params.get(key)
    if not isinstance(value, str) or not value or (pattern is not None and not pattern.match(value)):
        raise ProviderError(
            f"{grant.provider} needs params.{key} as {what or 'a non-empty string'}, got {value!r}", retryable=False
        )
    return value


def _aws_name(value: str, what: str, max_len: int, min_len: int = 1) -> str:
    if not (min_len <= len(value) <= max_len) or not _AWS_NAME.match(value):
        raise ProviderError(
            f"{what} {value!r} is not a valid AWS name ({min_len}-{max_len} characters of letters, digits and +=,.@_-)",
            retryable=False,
        )
    return value


def _resolvable_or_none(fn: Callable[[], Any]) -> Any:
    """For shared_target / expected_credential: parameters that cannot resolve (no such user,
    no such permission set, bad params) mean issue cannot have created anything, so there is
    nothing to hold or clean up; AWS being down is retryable and propagates."""
    try:
        return fn()
    except ProviderError as e:
        if e.retryable:
            raise
        return None


# ---------------------------------------------------------------------------------------------
# IAM Identity Center account assignment
# ---------------------------------------------------------------------------------------------


class IdentityCenterAssignmentProvider:
    """params: {permission_set: name or ARN, account_id: 12 digits}.

    Issue creates the assignment (or finds it already there: another grant holds it) and
    polls the creation status until SUCCEEDED with capped exponential backoff, bounded by
    `poll_timeout` seconds: FAILED is final (AWS's FailureReason in the error, not retryable);
    still IN_PROGRESS at the bound is retryable (the next attempt finds it or creates again).
    """

    name = "aws_identity_center"

    def __init__(
        self,
        clients: AwsClients,
        *,
        instance_arn: str | None = None,
        identity_store_id: str | None = None,
        poll_timeout: float = 15.0,
        poll_initial: float = 0.5,
        poll_max: float = 4.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clients = clients
        self._instance_arn, self._store_id = instance_arn, identity_store_id
        self._poll = (poll_timeout, poll_initial, poll_max)
        self._sleep = sleep
        self._ps_cache: dict[tuple[str, str], tuple[str, str]] = {}
        self._lock = threading.Lock()

    @property
    def _sso(self) -> Any:
        return self._clients.client("sso-admin")

    # -- resolution -------------------------------------------------------------------------
    def _instance(self) -> tuple[str, str]:
        """(instance ARN, identity store ID): configured, or the account's only instance."""
        if self._instance_arn and self._store_id:
            return self._instance_arn, self._store_id
        instances = _paginate(self._sso, "list_instances", "Instances", "list Identity Center instances")
        if self._instance_arn:
            found = [i for i in instances if i.get("InstanceArn") == self._instance_arn]
        else:
            found = instances
        if len(found) != 1:
            what = f"instance {self._instance_arn}" if self._instance_arn else "exactly one Identity Center instance"
            raise ProviderError(
                f"aws_identity_center needs {what}; found {len(found)} (set JITACCESS_AWS_SSO_INSTANCE_ARN "
                "and JITACCESS_AWS_IDENTITY_STORE_ID)",
                retryable=False,
            )
        with self._lock:
            self._instance_arn, self._store_id = found[0]["InstanceArn"], found[0]["IdentityStoreId"]
        return self._instance_arn, self._store_id

    def _permission_set(self, instance_arn: str, ref: str) -> tuple[str, str]:
        """(ARN, name) of a permission set named by name or ARN; cached (they rarely change)."""
        with self._lock:
            if (instance_arn, ref) in self._ps_cache:
                return self._ps_cache[(instance_arn, ref)]
        if ref.startswith("arn:"):
            try:
                ps = self._sso.describe_permission_set(InstanceArn=instance_arn, PermissionSetArn=ref)["PermissionSet"]
            except Exception as e:
                if _is(e, "ResourceNotFoundException"):
                    raise ProviderError(
                        f"permission set {ref} does not exist in {instance_arn}", retryable=False
                    ) from e
                raise translate(e, "describe the permission set") from e
            found: tuple[str, str] | None = (ps["PermissionSetArn"], ps.get("Name", ""))
        else:
            found = None
            arns = _paginate(
                self._sso, "list_permission_sets", "PermissionSets", "list permission sets", InstanceArn=instance_arn
            )
            for arn in arns:
                ps = _call(
                    "describe a permission set",
                    self._sso.describe_permission_set,
                    InstanceArn=instance_arn,
                    PermissionSetArn=arn,
                )["PermissionSet"]
                if ps.get("Name") == ref:
                    found = (arn, ref)
                    break
        if found is None:
            raise ProviderError(f"no permission set named {ref!r} in {instance_arn}", retryable=False)
        with self._lock:
            self._ps_cache[(instance_arn, ref)] = found
        return found

    def _user_id(self, store_id: str, user_name: str) -> str:
        ids = self._clients.client("identitystore")
        try:
            return ids.get_user_id(
                IdentityStoreId=store_id,
                AlternateIdentifier={"UniqueAttribute": {"AttributePath": "userName", "AttributeValue": user_name}},
            )["UserId"]
        except Exception as e:
            if _is(e, "ResourceNotFoundException"):
                raise ProviderError(f"no Identity Store user named {user_name!r} in {store_id}", retryable=False) from e
            raise translate(e, "resolve the requester's Identity Store user") from e

    def _target(self, grant: ProviderGrant) -> IssuedCredential:
        """The assignment this grant yields (deterministic: also expected_credential)."""
        ps_ref = _param_str(grant, "permission_set", what="a permission set name or ARN")
        account = grant.params.get("account_id")
        account = str(account) if isinstance(account, int) else account
        if not isinstance(account, str) or not _ACCOUNT_ID.match(account):
            raise ProviderError(
                f"aws_identity_center needs params.account_id as 12 digits, got {account!r}", retryable=False
            )
        instance_arn, store_id = self._instance()
        ps_arn, ps_name = self._permission_set(instance_arn, ps_ref)
        user_id = self._user_id(store_id, grant.principal)
        return IssuedCredential(
            provider=self.name,
            grant_id=grant.grant_id,
            reference=f"{instance_arn}#{account}#{ps_arn}#USER:{user_id}",
            details={
                "kind": "identity center account assignment",
                "instance_arn": instance_arn,
                "identity_store_id": store_id,
                "account_id": account,
                "permission_set_arn": ps_arn,
                "permission_set_name": ps_name,
                "principal_type": "USER",
                "principal_id": user_id,
                "user_name": grant.principal,
            },
        )

    # -- the port ----------------------------------------------------------------------------
    def shared_target(self, grant: ProviderGrant) -> str | None:
        cred = _resolvable_or_none(lambda: self._target(grant))
        return f"{self.name}:{cred.reference}" if cred else None

    def expected_credential(self, grant: ProviderGrant) -> IssuedCredential | None:
        return _resolvable_or_none(lambda: self._target(grant))

    def _assignment_args(self, cred: IssuedCredential) -> dict[str, str]:
        d = cred.details
        return {
            "InstanceArn": d["instance_arn"],
            "TargetId": d["account_id"],
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": d["permission_set_arn"],
            "PrincipalType": "USER",
            "PrincipalId": d["principal_id"],
        }

    def _assigned(self, cred: IssuedCredential) -> bool:
        d = cred.details
        found = _paginate(
            self._sso,
            "list_account_assignments",
            "AccountAssignments",
            "list account assignments",
            InstanceArn=d["instance_arn"],
            AccountId=d["account_id"],
            PermissionSetArn=d["permission_set_arn"],
        )
        return any(a.get("PrincipalType") == "USER" and a.get("PrincipalId") == d["principal_id"] for a in found)

    def _await(self, status: dict, kind: str, describe: Callable[[str], dict]) -> dict:
        """Poll an assignment creation/deletion status until it leaves IN_PROGRESS (bounded)."""
        timeout, delay, cap = self._poll
        deadline, waited = time.monotonic() + timeout, 0.0
        request_id = status.get("RequestId", "?")
        while True:
            state = status.get("Status")
            if state == "SUCCEEDED":
                return status
            if state == "FAILED":
                reason = status.get("FailureReason") or "no failure reason given"
                raise ProviderError(
                    f"account assignment {kind} FAILED (request {request_id}): {reason}", retryable=False
                )
            if waited + delay > timeout or time.monotonic() + delay > deadline:
                raise ProviderError(
                    f"account assignment {kind} still {state or 'unknown'} after {waited:.1f}s (request {request_id}); "
                    "will retry"
                )
            self._sleep(delay)
            waited += delay
            delay = min(delay * 2, cap)
            status = describe(request_id)

    def issue(
        self, grant: ProviderGrant, *, wrap_ttl: timedelta, first_attempt: bool = True
    ) -> tuple[IssuedCredential, WrappedHandover | None]:
        cred = self._target(grant)
        if self._assigned(cred):
            # another grant holds it (or an earlier attempt of this one made it): creating again is a no-op
            return cred.model_copy(update={"details": {**cred.details, "already_assigned": True}}), None
        resp = _call(
            "create the account assignment", self._sso.create_account_assignment, **self._assignment_args(cred)
        )
        instance_arn = cred.details["instance_arn"]
        done = self._await(
            resp["AccountAssignmentCreationStatus"],
            "creation",
            lambda rid: _call(
                "read the assignment creation status",
                self._sso.describe_account_assignment_creation_status,
                InstanceArn=instance_arn,
                AccountAssignmentCreationRequestId=rid,
            )["AccountAssignmentCreationStatus"],
        )
        return cred.model_copy(update={"details": {**cred.details, "creation_request_id": done.get("RequestId")}}), None

    @staticmethod
    def _describe(cred: IssuedCredential) -> str:
        d = cred.details
        ps = d["permission_set_name"] or d["permission_set_arn"]
        return f"{d['user_name']} (USER {d['principal_id']}) -> {ps} in {d['account_id']}"

    def verify_active(self, cred: IssuedCredential) -> tuple[bool, str]:
        what = self._describe(cred)
        if self._assigned(cred):
            return True, f"list_account_assignments: assignment present: {what}"
        return False, f"list_account_assignments: no assignment {what}"

    def revoke(self, cred: IssuedCredential) -> bool:
        if not self._assigned(cred):
            return False  # removed by hand, or never completed
        try:
            resp = self._sso.delete_account_assignment(**self._assignment_args(cred))
        except Exception as e:
            if _is(e, "ResourceNotFoundException"):
                return False
            raise translate(e, "delete the account assignment") from e
        instance_arn = cred.details["instance_arn"]
        self._await(
            resp["AccountAssignmentDeletionStatus"],
            "deletion",
            lambda rid: _call(
                "read the assignment deletion status",
                self._sso.describe_account_assignment_deletion_status,
                InstanceArn=instance_arn,
                AccountAssignmentDeletionRequestId=rid,
            )["AccountAssignmentDeletionStatus"],
        )
        return True

    def verify_revoked(self, cred: IssuedCredential) -> tuple[bool, str]:
        what = self._describe(cred)
        if self._assigned(cred):
            return False, f"list_account_assignments: assignment still present: {what}"
        return True, f"list_account_assignments: no assignment {what}"

    def extend(self, cred: IssuedCredential, ttl_seconds: int) -> IssuedCredential:
        """An assignment has no provider-side TTL: the grant's own timer is what ends it."""
        return cred

    def list_managed(self, grant_id: str | None = None) -> list[IssuedCredential]:
        """Account assignments cannot be tagged or named, so nothing at AWS says which grant made
        one (and a user may hold the same assignment outside jitaccess). What jitaccess holds is
        the hold ledger (ledger.holds, keyed by shared_target); clean-up of a failed issue uses
        expected_credential. Returns []."""
        return []


# ---------------------------------------------------------------------------------------------
# IAM group membership
# ---------------------------------------------------------------------------------------------


class IamGroupMembershipProvider:
    """params: {group}. The requester's IAM user (user name = requester id) joins the group."""

    name = "aws_iam_group"

    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients
        self._account: str | None = None

    @property
    def _iam(self) -> Any:
        return self._clients.client("iam")

    def _account_id(self) -> str:
        if self._account is None:
            ident = _call("identify the AWS account", self._clients.client("sts").get_caller_identity)
            self._account = ident["Account"]
        return self._account

    def _cred(self, grant: ProviderGrant) -> IssuedCredential:
        group = _aws_name(_param_str(grant, "group", what="an IAM group name"), "IAM group name", 128)
        user = _aws_name(grant.principal, "IAM user name (the requester id)", 64)
        account = self._account_id()
        return IssuedCredential(
            provider=self.name,
            grant_id=grant.grant_id,
            reference=f"{account}:group/{group}:member/{user}",
            details={"kind": "iam group membership", "account_id": account, "group": group, "user_name": user},
        )

    def shared_target(self, grant: ProviderGrant) -> str | None:
        cred = _resolvable_or_none(lambda: self._cred(grant))
        return f"{self.name}:{cred.reference}" if cred else None

    def expected_credential(self, grant: ProviderGrant) -> IssuedCredential | None:
        return _resolvable_or_none(lambda: self._cred(grant))

    def _member(self, cred: IssuedCredential) -> bool | None:
        """Is the user in the group? None when the user itself does not exist."""
        try:
            groups: list[dict[str, Any]] = []
            for page in self._iam.get_paginator("list_groups_for_user").paginate(UserName=cred.details["user_name"]):
                groups.extend(page.get("Groups") or [])
        except Exception as e:
            if _is(e, "NoSuchEntity"):
                return None
            raise translate(e, "list the user's groups") from e
        return any(g.get("GroupName") == cred.details["group"] for g in groups)

    def issue(
        self, grant: ProviderGrant, *, wrap_ttl: timedelta, first_attempt: bool = True
    ) -> tuple[IssuedCredential, WrappedHandover | None]:
        cred = self._cred(grant)
        try:  # idempotent at AWS: adding a member twice is a no-op
            self._iam.add_user_to_group(GroupName=cred.details["group"], UserName=cred.details["user_name"])
        except Exception as e:
            if _is(e, "NoSuchEntity"):
                raise ProviderError(
                    f"cannot add {cred.details['user_name']} to {cred.details['group']}: "
                    f"{e.response['Error'].get('Message', 'no such IAM user or group')}",
                    retryable=False,
                ) from e
            raise translate(e, "add the user to the group") from e
        return cred, None

    def verify_active(self, cred: IssuedCredential) -> tuple[bool, str]:
        user, group = cred.details["user_name"], cred.details["group"]
        member = self._member(cred)
        if member:
            return True, f"list_groups_for_user({user}): member of {group}"
        return False, f"list_groups_for_user({user}): " + (
            "no such user" if member is None else f"not a member of {group}"
        )

    def revoke(self, cred: IssuedCredential) -> bool:
        if not self._member(cred):
            return False
        try:
            self._iam.remove_user_from_group(GroupName=cred.details["group"], UserName=cred.details["user_name"])
        except Exception as e:
            if _is(e, "NoSuchEntity"):  # removed meanwhile (user, group or membership gone)
                return False
            raise translate(e, "remove the user from the group") from e
        return True

    def verify_revoked(self, cred: IssuedCredential) -> tuple[bool, str]:
        user, group = cred.details["user_name"], cred.details["group"]
        member = self._member(cred)
        if member is None:
            return True, f"list_groups_for_user({user}): no such user (no membership left)"
        if member:
            return False, f"list_groups_for_user({user}): still a member of {group}"
        return True, f"list_groups_for_user({user}): not a member of {group}"

    def extend(self, cred: IssuedCredential, ttl_seconds: int) -> IssuedCredential:
        """A membership has no provider-side TTL: the grant's own timer is what ends it."""
        return cred

    def list_managed(self, grant_id: str | None = None) -> list[IssuedCredential]:
        """Group memberships carry no tags, and a user may be in the group outside jitaccess:
        what jitaccess holds is the hold ledger (ledger.holds, keyed by shared_target); clean-up
        of a failed issue uses expected_credential. Returns []."""
        return []


# ---------------------------------------------------------------------------------------------
# STS role session
# ---------------------------------------------------------------------------------------------

REVOCATION_POLICY_PREFIX = "jitaccess-revoked-"
STS_MIN_SECONDS, STS_MAX_SECONDS = 900, 43200
SESSION_POLICY_MAX_CHARS = 2048  # AssumeRole's plaintext Policy limit
CLOCK_SKEW = timedelta(minutes=5)  # margin between our clock and AWS's for the revocation cut-off


def role_session_name(grant_id: str) -> str:
    """RoleSessionName from the grant ID: 2-64 characters of [\\w+=,.@-]; long IDs keep a hash suffix."""
    name = re.sub(r"[^\w+=,.@-]", "-", grant_id)
    if len(name) > 64:
        name = name[:51] + "-" + hashlib.sha256(grant_id.encode()).hexdigest()[:12]
    return name if len(name) >= 2 else f"g-{name}"


def revocation_policy_name(grant_id: str) -> str:
    """The role inline policy that denies one grant's sessions (names: 128 chars of [\\w+=,.@-])."""
    safe = re.sub(r"[^\w+=,.@-]", "-", grant_id)
    if len(safe) > 128 - len(REVOCATION_POLICY_PREFIX):
        safe = safe[:80] + "-" + hashlib.sha256(grant_id.encode()).hexdigest()[:16]
    return REVOCATION_POLICY_PREFIX + safe


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return v.astimezone(UTC)
    if isinstance(v, str):
        try:
            return datetime.fromisoformat(v.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            return None
    return None


def _as_list(v: Any) -> list:
    return v if isinstance(v, list) else [v]


class StsRoleSessionProvider(PerGrantCredentials):
    """params: {role_arn, session_policy?: IAM policy dict, max_session_seconds?: 900..43200 (default 3600)}.

    Revocation writes one inline policy per revoked grant on the role,
    `jitaccess-revoked-<grant id>`, with a single statement

        Deny * on * when aws:PrincipalTag/grant_id == <grant id>
                     and aws:TokenIssueTime < <revocation time + clock-skew margin>
                     and aws:CurrentTime   < <STS expiry + margin>

    Scoped by the grant tag, not by SourceIdentity: denying the requester's sessions
    would also cut off their other, still-active grants on the same role. One document
    per grant means concurrent revocations on several workers never overwrite each
    other's statements (no read-modify-write of a shared document). The aws:CurrentTime
    bound says when every session the statement targets has expired: each revocation
    deletes such lapsed documents, so the role's inline-policy size stays bounded by the
    revocations whose sessions are still live (an early revocation at most; a grant that
    simply expired leaves a document for a few seconds to 15 minutes).
    """

    name = "aws_sts_session"

    def __init__(
        self,
        clients: AwsClients,
        wrapper: VaultWrapper | None,
        *,
        roles: Iterable[str] = (),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._clients = clients
        self._wrapper = wrapper
        self._now = now
        self._roles: set[str] = set(roles)  # role ARNs whose revocation documents list_managed reads
        self._roles_lock = threading.Lock()

    @property
    def _iam(self) -> Any:
        return self._clients.client("iam")

    # -- parameters --------------------------------------------------------------------------
    @staticmethod
    def _params(grant: ProviderGrant) -> tuple[str, str, str, dict | None, int]:
        """(role_arn, account_id, role_name, session_policy, max_session_seconds)"""
        role_arn = _param_str(grant, "role_arn", _ROLE_ARN, "an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
        m = _ROLE_ARN.match(role_arn)
        assert m is not None
        policy = grant.params.get("session_policy")
        if policy is not None:
            if (
                not isinstance(policy, dict)
                or not isinstance(policy.get("Statement"), (list, dict))
                or not policy["Statement"]
            ):
                raise ProviderError(
                    f"aws_sts_session params.session_policy must be an IAM policy document with a Statement, got {policy!r}",
                    retryable=False,
                )
            for st in _as_list(policy["Statement"]):
                if not isinstance(st, dict) or st.get("Effect") not in ("Allow", "Deny"):
                    raise ProviderError(
                        f"aws_sts_session params.session_policy statement needs Effect Allow or Deny: {st!r}",
                        retryable=False,
                    )
            size = len(json.dumps(policy, separators=(",", ":")))
            if size > SESSION_POLICY_MAX_CHARS:
                raise ProviderError(
                    f"aws_sts_session params.session_policy is {size} characters; AssumeRole accepts at most "
                    f"{SESSION_POLICY_MAX_CHARS}",
                    retryable=False,
                )
        max_s = grant.params.get("max_session_seconds", 3600)
        if isinstance(max_s, bool) or not isinstance(max_s, int) or not STS_MIN_SECONDS <= max_s <= STS_MAX_SECONDS:
            raise ProviderError(
                f"aws_sts_session params.max_session_seconds must be an integer {STS_MIN_SECONDS}..{STS_MAX_SECONDS}, "
                f"got {max_s!r}",
                retryable=False,
            )
        return role_arn, m.group(1), m.group(2), policy, max_s

    @staticmethod
    def duration_seconds(ttl_seconds: int, max_session_seconds: int, role_max_seconds: int = STS_MAX_SECONDS) -> int:
        """min(remaining grant time, entitlement max, role max), but at least STS's 900 s."""
        return max(STS_MIN_SECONDS, min(ttl_seconds, max_session_seconds, role_max_seconds))

    @staticmethod
    def _assumed_arn(role_arn: str, account: str, role_name: str, session: str) -> str:
        partition = role_arn.split(":")[1]
        return f"arn:{partition}:sts::{account}:assumed-role/{role_name}/{session}"

    # -- the port ----------------------------------------------------------------------------
    def issue(
        self, grant: ProviderGrant, *, wrap_ttl: timedelta, first_attempt: bool = True
    ) -> tuple[IssuedCredential, WrappedHandover]:
        # A retry mints a fresh session: a session minted by an earlier attempt whose reply was
        # lost was never handed to anyone (its keys lived only in that attempt's memory).
        role_arn, _account, role_name, policy, max_s = self._params(grant)
        source_identity = _aws_name(grant.principal, "SourceIdentity (the requester id)", 64, min_len=2)
        if self._wrapper is None:
            raise ProviderError(
                "aws_sts_session needs Vault to response-wrap the keys; none configured", retryable=False
            )
        with self._roles_lock:
            self._roles.add(role_arn)
        try:
            role = self._iam.get_role(RoleName=role_name)["Role"]
        except Exception as e:
            if _is(e, "NoSuchEntity"):
                raise ProviderError(f"role {role_arn} does not exist", retryable=False) from e
            raise translate(e, "read the role") from e
        # the grant's remaining time at this call (rounded down); STS's 900 s minimum may force a
        # later end, recorded below as the residual window
        remaining = remaining_ttl(grant, self._now())
        duration = self.duration_seconds(remaining, max_s, int(role.get("MaxSessionDuration") or 3600))
        session = role_session_name(grant.grant_id)
        kwargs: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": session,
            "DurationSeconds": duration,
            "SourceIdentity": source_identity,
            "Tags": [{"Key": "grant_id", "Value": grant.grant_id}],
            "TransitiveTagKeys": ["grant_id"],
        }
        if policy is not None:
            kwargs["Policy"] = json.dumps(policy, separators=(",", ":"))
        resp = _call("assume the role", self._clients.client("sts").assume_role, **kwargs)
        keys, user = resp["Credentials"], resp["AssumedRoleUser"]
        expires = _parse_time(keys["Expiration"])
        assert expires is not None

        # prove the keys before handing them over: they must authenticate as this very session
        try:
            ident = self._clients.client_with_keys(
                "sts", keys["AccessKeyId"], keys["SecretAccessKey"], keys["SessionToken"]
            ).get_caller_identity()
        except Exception as e:
            raise translate(e, "authenticate with the new session's keys") from e
        if ident.get("Arn") != user["Arn"]:
            raise ProviderError(
                f"the new session's keys authenticate as {ident.get('Arn')!r}, expected {user['Arn']!r}"
            )

        handover = self._wrapper.wrap(
            {
                "aws_access_key_id": keys["AccessKeyId"],
                "aws_secret_access_key": keys["SecretAccessKey"],
                "aws_session_token": keys["SessionToken"],
                "expiration": _iso(expires),
                "assumed_role_arn": user["Arn"],
                "region": self._clients.region,
            },
            wrap_ttl,
        )
        del keys, resp
        # keys valid after the grant's expiry: revocation denies them, but they only stop existing then
        residual = (
            max(0, math.ceil((expires - grant.expires_at).total_seconds())) if grant.expires_at is not None else None
        )
        cred = IssuedCredential(
            provider=self.name,
            grant_id=grant.grant_id,
            reference=user["Arn"],
            details={
                "kind": "sts role session",
                "role_arn": role_arn,
                "session_name": session,
                "assumed_role_id": user.get("AssumedRoleId"),
                "source_identity": source_identity,
                "session_tags": {"grant_id": grant.grant_id},
                "duration_seconds": duration,
                "issued_at": _iso(expires - timedelta(seconds=duration)),
                "session_policy": policy,
                "verified_caller": ident.get("Arn"),
                "residual_seconds": residual,  # STS expiry past the grant's (the 900 s minimum), if any
            },
            expires_at=expires,
        )
        return cred, handover

    def extend(self, cred: IssuedCredential, ttl_seconds: int) -> IssuedCredential:
        raise ProviderError(
            "aws_sts_session: an STS session's expiration is fixed when it is issued and cannot be extended; "
            "request a new grant",
            retryable=False,
        )

    def expected_credential(self, grant: ProviderGrant) -> IssuedCredential | None:
        """The session ARN is deterministic (role + session name from the grant ID). After a failed
        issue an AssumeRole whose reply was lost may have minted a session: clean-up revokes
        every session of this grant issued up to now (a deny for the grant's tag) and confirms
        the deny by reading it back."""

        def expected() -> IssuedCredential:
            role_arn, account, role_name, _policy, max_s = self._params(grant)
            session = role_session_name(grant.grant_id)
            now = self._now()
            # any such session was issued before now, for at most max_session_seconds
            return IssuedCredential(
                provider=self.name,
                grant_id=grant.grant_id,
                reference=self._assumed_arn(role_arn, account, role_name, session),
                details={
                    "kind": "sts role session",
                    "role_arn": role_arn,
                    "session_name": session,
                    "issued_at": _iso(now),
                    "duration_seconds": max_s,
                    "note": "whatever an interrupted issue may have minted: issued before now, lives at most max_session_seconds",
                },
                expires_at=now + timedelta(seconds=max_s),
            )

        return _resolvable_or_none(expected)

    def _role_name(self, cred: IssuedCredential) -> str:
        m = _ROLE_ARN.match(cred.details.get("role_arn", ""))
        if m is None:
            raise ProviderError(f"credential {cred.reference} has no valid role_arn", retryable=False)
        return m.group(2)

    def _read_revocation(self, role_name: str, grant_id: str) -> dict | None:
        """The grant's revocation document on the role; None if absent (or the role is gone)."""
        return self._read_policy(role_name, revocation_policy_name(grant_id))

    def _read_policy(self, role_name: str, name: str) -> dict | None:
        try:
            doc = self._iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        except Exception as e:
            if _is(e, "NoSuchEntity"):
                return None
            raise translate(e, "read the role's revocation policy") from e
        return json.loads(doc) if isinstance(doc, str) else doc  # botocore decodes IAM documents already

    @staticmethod
    def _statement_covers(st: dict, grant_id: str, issued_at: datetime | None, expires_at: datetime | None) -> bool:
        """Does this statement deny everything to the grant's session issued at `issued_at`
        for as long as it lives?"""
        if (
            st.get("Effect") != "Deny"
            or "*" not in _as_list(st.get("Action"))
            or "*" not in _as_list(st.get("Resource"))
        ):
            return False
        cond = st.get("Condition") or {}
        if grant_id not in _as_list((cond.get("StringEquals") or {}).get("aws:PrincipalTag/grant_id")):
            return False
        dates = cond.get("DateLessThan") or {}
        cutoff, until = _parse_time(dates.get("aws:TokenIssueTime")), _parse_time(dates.get("aws:CurrentTime"))
        if cutoff is None or (issued_at is not None and not issued_at < cutoff):
            return False
        if "aws:CurrentTime" in dates and (until is None or (expires_at is not None and until < expires_at)):
            return False
        return True

    def _covering(self, doc: dict | None, cred: IssuedCredential) -> dict | None:
        if not doc:
            return None
        issued_at = _parse_time(cred.details.get("issued_at"))
        for st in _as_list(doc.get("Statement") or []):
            if isinstance(st, dict) and self._statement_covers(st, cred.grant_id, issued_at, cred.expires_at):
                return st
        return None

    def _expired(self, cred: IssuedCredential) -> bool:
        return cred.expires_at is not None and self._now() > cred.expires_at + CLOCK_SKEW

    def _policy_names(self, role_name: str) -> list[str]:
        """The role's inline policy names; [] when the role is gone (and its documents with it)."""
        try:
            names: list[str] = []
            for page in self._iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
                names.extend(page.get("PolicyNames") or [])
            return names
        except Exception as e:
            if _is(e, "NoSuchEntity"):
                return []
            raise translate(e, "list the role's inline policies") from e

    def _prune(self, role_name: str, keep: str) -> list[str]:
        """Delete revocation documents whose sessions have all expired (their aws:CurrentTime bound passed)."""
        now, pruned = self._now(), []
        names = self._policy_names(role_name)
        for name in names:
            if not name.startswith(REVOCATION_POLICY_PREFIX) or name == keep:
                continue
            doc = self._read_policy(role_name, name)
            if doc is None:  # another worker pruned it first
                continue
            try:
                bounds = [
                    _parse_time(((st.get("Condition") or {}).get("DateLessThan") or {}).get("aws:CurrentTime"))
                    for st in _as_list(doc.get("Statement") or [])
                    if isinstance(st, dict)
                ]
                if bounds and all(b is not None and b < now for b in bounds):
                    self._iam.delete_role_policy(RoleName=role_name, PolicyName=name)
                    pruned.append(name)
            except Exception as e:
                if _is(e, "NoSuchEntity"):  # another worker pruned it first
                    continue
                raise translate(e, "prune lapsed revocation policies") from e
        return pruned

    def revoke(self, cred: IssuedCredential) -> bool:
        """Deny the grant's sessions issued before now (+ skew margin); False when there is nothing
        left to deny: already denied, or every session of the grant has expired on its own."""
        role_name = self._role_name(cred)
        with self._roles_lock:
            self._roles.add(cred.details["role_arn"])
        if self._expired(cred):
            return False
        if self._covering(self._read_revocation(role_name, cred.grant_id), cred):
            return False
        now = self._now()
        until = (cred.expires_at or now + timedelta(seconds=STS_MAX_SECONDS)) + CLOCK_SKEW
        statement = {
            "Sid": "JitaccessRevokedGrant",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"aws:PrincipalTag/grant_id": cred.grant_id},
                # sessions of this grant issued before the revocation (a margin for clock skew:
                # no session of a revoked grant is ever issued afterwards), until all have expired
                "DateLessThan": {"aws:TokenIssueTime": _iso(now + CLOCK_SKEW), "aws:CurrentTime": _iso(until)},
            },
        }
        name = revocation_policy_name(cred.grant_id)
        self._prune(role_name, keep=name)
        try:
            self._iam.put_role_policy(
                RoleName=role_name,
                PolicyName=name,
                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":")),
            )
        except Exception as e:
            if _is(e, "NoSuchEntity"):
                return False  # the role is gone: its sessions have no permissions left
            raise translate(e, "write the revocation policy on the role") from e
        return True

    def verify_revoked(self, cred: IssuedCredential) -> tuple[bool, str]:
        role_name = self._role_name(cred)
        name = revocation_policy_name(cred.grant_id)
        st = self._covering(self._read_revocation(role_name, cred.grant_id), cred)
        expiry = _iso(cred.expires_at) if cred.expires_at else "unknown"
        if st is not None:
            dates = st["Condition"]["DateLessThan"]
            return True, (
                f"get_role_policy({role_name}, {name}): Deny * for sessions tagged grant_id={cred.grant_id} "
                f"issued before {dates['aws:TokenIssueTime']} (in force until {dates.get('aws:CurrentTime')}); "
                f"the STS credentials would have expired on their own at {expiry}"
            )
        if self._expired(cred):
            return True, f"STS session expired on its own at {expiry} (no deny needed)"
        if not self._role_exists(role_name):
            return True, f"role {role_name} no longer exists: its sessions have no permissions"
        return False, (
            f"get_role_policy({role_name}, {name}): no deny statement for grant {cred.grant_id}; session live until {expiry}"
        )

    def _role_exists(self, role_name: str) -> bool:
        try:
            self._iam.get_role(RoleName=role_name)
            return True
        except Exception as e:
            if _is(e, "NoSuchEntity"):
                return False
            raise translate(e, "read the role") from e

    def verify_active(self, cred: IssuedCredential) -> tuple[bool, str]:
        role_name = self._role_name(cred)
        if cred.expires_at is None or self._now() >= cred.expires_at:
            return False, f"STS session {cred.reference} has expired ({cred.expires_at})"
        if not self._role_exists(role_name):
            return False, f"role {role_name} does not exist"
        if self._covering(self._read_revocation(role_name, cred.grant_id), cred):
            return False, f"role {role_name} carries a revocation deny for grant {cred.grant_id}"
        return True, (
            f"keys authenticated as {cred.details.get('verified_caller')} (get_caller_identity); role {role_name} "
            f"exists with no revocation deny for grant {cred.grant_id}; STS expiry {_iso(cred.expires_at)}"
        )

    def list_managed(self, grant_id: str | None = None) -> list[IssuedCredential]:
        """STS cannot list a role's live sessions, so the only thing at AWS that names a grant is
        its revocation document. Returns those grants (for the roles this worker knows: the
        `roles` given at construction plus any it has used), each as the deterministic session
        reference; live, unrevoked sessions are found through the grants' own records, not here."""
        found = []
        with self._roles_lock:
            roles = sorted(self._roles)
        for role_arn in roles:
            m = _ROLE_ARN.match(role_arn)
            if m is None:
                continue
            account, role_name = m.group(1), m.group(2)
            for name in self._policy_names(role_name):
                if not name.startswith(REVOCATION_POLICY_PREFIX):
                    continue
                doc = self._read_policy(role_name, name)
                for st in _as_list((doc or {}).get("Statement") or []):
                    cond = (st.get("Condition") or {}) if isinstance(st, dict) else {}
                    dates = cond.get("DateLessThan") or {}
                    for gid in _as_list((cond.get("StringEquals") or {}).get("aws:PrincipalTag/grant_id")):
                        if not isinstance(gid, str) or (grant_id and gid != grant_id):
                            continue
                        until = _parse_time(dates.get("aws:CurrentTime"))
                        found.append(
                            IssuedCredential(
                                provider=self.name,
                                grant_id=gid,
                                reference=self._assumed_arn(role_arn, account, role_name, role_session_name(gid)),
                                details={
                                    "kind": "sts role session (revoked)",
                                    "role_arn": role_arn,
                                    "session_name": role_session_name(gid),
                                    "revocation_policy": name,
                                    "not_issued_after": dates.get("aws:TokenIssueTime"),
                                },
                                expires_at=until - CLOCK_SKEW if until else None,
                            )
                        )
        return found


# ---------------------------------------------------------------------------------------------
# dev stack
# ---------------------------------------------------------------------------------------------

DEV_PERMISSION_SET = "PlatformReadOnly"
DEV_IAM_GROUP = "platform-oncall"
DEV_ROLE = "jit-platform-deploy"
DEV_READONLY_POLICY = "arn:aws:iam::aws:policy/ReadOnlyAccess"


def seed_dev_aws(
    endpoint: str, region: str, users: list[str], *, access_key_id: str = "testing", secret_access_key: str = "testing"
) -> dict[str, str]:
    """Dev stack (moto_server): what the example catalogue's AWS entitlements need. Idempotent.

    - the Identity Center instance: moto pre-creates one per account and region (there is
      no CreateInstance there); the first one listed is used, one is created where the API
      supports it and none exists
    - permission set PlatformReadOnly (ReadOnlyAccess attached) and, for every dev user,
      an Identity Store user (UserName = the dev user) and an IAM user of the same name
    - IAM group platform-oncall (ReadOnlyAccess attached)
    - role jit-platform-deploy, assumable in the account (sts:AssumeRole, sts:TagSession,
      sts:SetSourceIdentity), MaxSessionDuration 3600, ReadOnlyAccess attached

    Returns {account_id, region, endpoint, instance_arn, identity_store_id, permission_set_name,
    permission_set_arn, iam_group, role_arn}.
    """
    kw = dict(
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
    )
    sso, ids, iam, sts = (boto3.client(s, **kw) for s in ("sso-admin", "identitystore", "iam", "sts"))
    account = sts.get_caller_identity()["Account"]

    instances = sso.list_instances().get("Instances") or []
    if not instances:
        sso.create_instance(Name="jitaccess-dev")
        instances = sso.list_instances()["Instances"]
    instance_arn, store_id = instances[0]["InstanceArn"], instances[0]["IdentityStoreId"]

    ps_arn = None
    for arn in sso.list_permission_sets(InstanceArn=instance_arn).get("PermissionSets") or []:
        described = sso.describe_permission_set(InstanceArn=instance_arn, PermissionSetArn=arn)["PermissionSet"]
        if described.get("Name") == DEV_PERMISSION_SET:
            ps_arn = arn
            break
    if ps_arn is None:
        ps_arn = sso.create_permission_set(
            InstanceArn=instance_arn,
            Name=DEV_PERMISSION_SET,
            Description="Read-only access to the platform account",
            SessionDuration="PT1H",
        )["PermissionSet"]["PermissionSetArn"]
        sso.attach_managed_policy_to_permission_set(
            InstanceArn=instance_arn, PermissionSetArn=ps_arn, ManagedPolicyArn=DEV_READONLY_POLICY
        )

    for user in users:
        try:
            ids.get_user_id(
                IdentityStoreId=store_id,
                AlternateIdentifier={"UniqueAttribute": {"AttributePath": "userName", "AttributeValue": user}},
            )
        except ClientError as e:
            if _code(e) != "ResourceNotFoundException":
                raise
            ids.create_user(
                IdentityStoreId=store_id,
                UserName=user,
                DisplayName=user,
                Name={"GivenName": user, "FamilyName": "dev"},
                Emails=[{"Value": f"{user}@example.test", "Primary": True}],
            )
        try:
            iam.create_user(UserName=user, Tags=[{"Key": "managed_by", "Value": "jitaccess-dev"}])
        except ClientError as e:
            if _code(e) != "EntityAlreadyExists":
                raise

    try:
        iam.create_group(GroupName=DEV_IAM_GROUP)
        iam.attach_group_policy(GroupName=DEV_IAM_GROUP, PolicyArn=DEV_READONLY_POLICY)
    except ClientError as e:
        if _code(e) != "EntityAlreadyExists":
            raise

    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
            }
        ],
    }
    try:
        role_arn = iam.create_role(
            RoleName=DEV_ROLE,
            AssumeRolePolicyDocument=json.dumps(trust),
            MaxSessionDuration=3600,
            Description="jitaccess dev: deploy role handed out as STS sessions",
        )["Role"]["Arn"]
        iam.attach_role_policy(RoleName=DEV_ROLE, PolicyArn=DEV_READONLY_POLICY)
    except ClientError as e:
        if _code(e) != "EntityAlreadyExists":
            raise
        role_arn = iam.get_role(RoleName=DEV_ROLE)["Role"]["Arn"]

    return {
        "account_id": account,
        "region": region,
        "endpoint": endpoint,
        "instance_arn": instance_arn,
        "identity_store_id": store_id,
        "permission_set_name": DEV_PERMISSION_SET,
        "permission_set_arn": ps_arn,
        "iam_group": DEV_IAM_GROUP,
        "role_arn": role_arn,
    }
