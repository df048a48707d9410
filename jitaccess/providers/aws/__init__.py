"""AWS providers (boto3), one module per target:

- `aws_identity_center` (identity_center.py): IAM Identity Center account assignments;
- `aws_iam_group` (iam_group.py): IAM group membership;
- `aws_sts_session` (sts_session.py): STS role sessions, revoked by a deny policy on the role;

and what they share (clients.py): boto3 clients from settings, AWS errors as ProviderErrors.
"""

from jitaccess.providers.aws.clients import AwsClients, translate
from jitaccess.providers.aws.iam_group import IamGroupMembershipProvider
from jitaccess.providers.aws.identity_center import IdentityCenterAssignmentProvider
from jitaccess.providers.aws.sts_session import (
    CLOCK_SKEW,
    REVOCATION_POLICY_PREFIX,
    StsRoleSessionProvider,
    revocation_policy_name,
    role_session_name,
)

__all__ = [
    "CLOCK_SKEW",
    "REVOCATION_POLICY_PREFIX",
    "AwsClients",
    "IamGroupMembershipProvider",
    "IdentityCenterAssignmentProvider",
    "StsRoleSessionProvider",
    "revocation_policy_name",
    "role_session_name",
    "translate",
]
