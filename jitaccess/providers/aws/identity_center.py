"""IAM Identity Center account assignments (`aws_identity_center`).

The requester's Identity Store user (resolved by user name) x permission set x account. Issue =
create the assignment and poll its creation status; revoke = delete it and poll the deletion
status; both are confirmed with list_account_assignments. Shared access (several grants can
yield the same assignment): a hold count guards it (ledger.holds). Nothing secret is handed
over: the requester signs in through their existing SSO.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from jitaccess.domain.credentials import IssuedCredential, ProviderGrant, WrappedHandover
from jitaccess.domain.provider_params import IdentityCenterParams
from jitaccess.providers.aws.clients import AwsClients, call, is_error, paginate, resolvable_or_none, translate
from jitaccess.providers.base import ProviderError, grant_params

# an assignment's creation / deletion: (status key, the call that reads it, its request-ID parameter)
_STATUS_CALLS = {
    "creation": (
        "AccountAssignmentCreationStatus",
        "describe_account_assignment_creation_status",
        "AccountAssignmentCreationRequestId",
    ),
    "deletion": (
        "AccountAssignmentDeletionStatus",
        "describe_account_assignment_deletion_status",
        "AccountAssignmentDeletionRequestId",
    ),
}


class IdentityCenterAssignmentProvider:
    """params: IdentityCenterParams {permission_set: name or ARN, account_id: 12 digits}.

    Issue creates the assignment (or finds it already there: another grant holds it) and
    polls the creation status until SUCCEEDED with capped exponential backoff, bounded by
    `poll_timeout` seconds: FAILED is final (AWS's FailureReason in the error, not retryable);
    still IN_PROGRESS at the bound is retryable (the next attempt finds it or creates again).
    """

    name = "aws_identity_center"
    params_model = IdentityCenterParams

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
        instances = paginate(self._sso, "list_instances", "Instances", "list Identity Center instances")
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
                if is_error(e, "ResourceNotFoundException"):
                    raise ProviderError(
                        f"permission set {ref} does not exist in {instance_arn}", retryable=False
                    ) from e
                raise translate(e, "describe the permission set") from e
            found: tuple[str, str] | None = (ps["PermissionSetArn"], ps.get("Name", ""))
        else:
            found = None
            arns = paginate(
                self._sso, "list_permission_sets", "PermissionSets", "list permission sets", InstanceArn=instance_arn
            )
            for arn in arns:
                ps = call(
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
            if is_error(e, "ResourceNotFoundException"):
                raise ProviderError(f"no Identity Store user named {user_name!r} in {store_id}", retryable=False) from e
            raise translate(e, "resolve the requester's Identity Store user") from e

    def _target(self, grant: ProviderGrant) -> IssuedCredential:
        """The assignment this grant yields (deterministic: also expected_credential)."""
        params = grant_params(IdentityCenterParams, grant)
        account = params.account_id
        instance_arn, store_id = self._instance()
        ps_arn, ps_name = self._permission_set(instance_arn, params.permission_set)
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
        cred = resolvable_or_none(lambda: self._target(grant))
        return f"{self.name}:{cred.reference}" if cred else None

    def expected_credential(self, grant: ProviderGrant) -> IssuedCredential | None:
        return resolvable_or_none(lambda: self._target(grant))

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
        found = paginate(
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

    def _settle(self, cred: IssuedCredential, resp: dict, kind: str) -> dict:
        """Await the creation / deletion that `resp` started (its status, polled by request ID)."""
        status, describe, request_id = _STATUS_CALLS[kind]
        instance_arn = cred.details["instance_arn"]
        return self._await(
            resp[status],
            kind,
            lambda rid: call(
                f"read the assignment {kind} status",
                getattr(self._sso, describe),
                InstanceArn=instance_arn,
                **{request_id: rid},
            )[status],
        )

    def issue(
        self, grant: ProviderGrant, *, wrap_ttl: timedelta, first_attempt: bool = True
    ) -> tuple[IssuedCredential, WrappedHandover | None]:
        cred = self._target(grant)
        if self._assigned(cred):
            # another grant holds it (or an earlier attempt of this one made it): creating again is a no-op
            return cred.model_copy(update={"details": {**cred.details, "already_assigned": True}}), None
        resp = call("create the account assignment", self._sso.create_account_assignment, **self._assignment_args(cred))
        done = self._settle(cred, resp, "creation")
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
            if is_error(e, "ResourceNotFoundException"):
                return False
            raise translate(e, "delete the account assignment") from e
        self._settle(cred, resp, "deletion")
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
