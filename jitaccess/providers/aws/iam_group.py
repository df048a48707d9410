"""IAM group membership (`aws_iam_group`).

The requester's IAM user (user name = requester id) in a group; confirmed with
list_groups_for_user. Shared access (several grants can yield the same membership): a hold
count guards it (ledger.holds).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from jitaccess.domain.credentials import IssuedCredential, ProviderGrant, WrappedHandover
from jitaccess.domain.provider_params import IamGroupParams
from jitaccess.providers.aws.clients import AwsClients, aws_name, call, is_error, resolvable_or_none, translate
from jitaccess.providers.base import ProviderError, grant_params


class IamGroupMembershipProvider:
    """params: IamGroupParams {group}. The requester's IAM user (user name = requester id) joins the group."""

    name = "aws_iam_group"
    params_model = IamGroupParams

    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients
        self._account: str | None = None

    @property
    def _iam(self) -> Any:
        return self._clients.client("iam")

    def _account_id(self) -> str:
        if self._account is None:
            ident = call("identify the AWS account", self._clients.client("sts").get_caller_identity)
            self._account = ident["Account"]
        return self._account

    def _cred(self, grant: ProviderGrant) -> IssuedCredential:
        group = grant_params(IamGroupParams, grant).group
        user = aws_name(grant.principal, "IAM user name (the requester id)", 64)
        account = self._account_id()
        return IssuedCredential(
            provider=self.name,
            grant_id=grant.grant_id,
            reference=f"{account}:group/{group}:member/{user}",
            details={"kind": "iam group membership", "account_id": account, "group": group, "user_name": user},
        )

    def shared_target(self, grant: ProviderGrant) -> str | None:
        cred = resolvable_or_none(lambda: self._cred(grant))
        return f"{self.name}:{cred.reference}" if cred else None

    def expected_credential(self, grant: ProviderGrant) -> IssuedCredential | None:
        return resolvable_or_none(lambda: self._cred(grant))

    def _member(self, cred: IssuedCredential) -> bool | None:
        """Is the user in the group? None when the user itself does not exist."""
        try:
            groups: list[dict[str, Any]] = []
            for page in self._iam.get_paginator("list_groups_for_user").paginate(UserName=cred.details["user_name"]):
                groups.extend(page.get("Groups") or [])
        except Exception as e:
            if is_error(e, "NoSuchEntity"):
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
            if is_error(e, "NoSuchEntity"):
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
        # no membership check first: IAM answers NoSuchEntity for a user not in the group (as for a
        # missing user or group), which tells "already gone" apart in one call, not two
        try:
            self._iam.remove_user_from_group(GroupName=cred.details["group"], UserName=cred.details["user_name"])
        except Exception as e:
            if is_error(e, "NoSuchEntity"):  # not a member (any more), or the user or group is gone
                return False
            raise translate(e, "remove the user from the group") from e
        return True

    def verify_revoked(self, cred: IssuedCredential) -> tuple[bool, str]:
        user, group = cred.details["user_name"], cred.details["group"]
        member = self._member(cred)
        if member:
            return False, f"list_groups_for_user({user}): still a member of {group}"
        left = "no such user (no membership left)" if member is None else f"not a member of {group}"
        return True, f"list_groups_for_user({user}): {left}"

    def extend(self, cred: IssuedCredential, ttl_seconds: int) -> IssuedCredential:
        """A membership has no provider-side TTL: the grant's own timer is what ends it."""
        return cred

    def list_managed(self, grant_id: str | None = None) -> list[IssuedCredential]:
        """Group memberships carry no tags, and a user may be in the group outside jitaccess:
        what jitaccess holds is the hold ledger (ledger.holds, keyed by shared_target); clean-up
        of a failed issue uses expected_credential. Returns []."""
        return []
