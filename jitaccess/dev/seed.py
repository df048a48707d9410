"""Seeding the dev stack's servers with what the example catalogue needs: used by `jitaccess
dev up`, the test fixtures and the bench, never by production code. Every seed is idempotent.

- OpenBao: the catalogue's ACL policies and a little KV data (seed_dev_vault), the AppRole auth
  method and a per-service role (seed_dev_approle), the database secrets engine pointed at a
  PostgreSQL (seed_dev_database);
- moto_server: the Identity Center permission set, IAM users, group and role (seed_dev_aws).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import boto3
import hvac
from botocore.exceptions import ClientError

from jitaccess.providers.aws.clients import error_code
from jitaccess.providers.vault_database import plain_dsn

DEV_SCHEMA = "jitaccess_demo"
DEV_TABLE = "accounts"


@dataclass(frozen=True)
class SeedResult:
    """Truthy when the dev stack was configured; `message` says what was done or why not."""

    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok


@contextmanager
def root_client(addr: str, root_token: str) -> Iterator[hvac.Client]:
    """An OpenBao client with the dev root token, closed afterwards."""
    c = hvac.Client(url=addr, token=root_token)
    try:
        yield c
    finally:
        c.adapter.close()


def seed_dev_vault(addr: str, root_token: str, policies: dict[str, str]) -> None:
    """Dev stack: write the catalogue's ACL policies and a little KV data to read."""
    with root_client(addr, root_token) as c:
        for name, body in policies.items():
            c.sys.create_or_update_acl_policy(name=name, policy=body)
        c.secrets.kv.v2.create_or_update_secret(
            path="platform/demo", secret={"greeting": "hello from jitaccess"}, mount_point="secret"
        )


def seed_dev_approle(
    vault_addr: str,
    root_token: str,
    *,
    mount: str = "approle",
    role_name: str = "payments-api",
    policy_name: str = "jit-payments-read",
    token_ttl: timedelta = timedelta(minutes=15),
    token_max_ttl: timedelta = timedelta(hours=1),
) -> SeedResult:
    """Dev stack: the AppRole auth method at `mount`, a read policy on secret/payments/*, a
    little KV data there, and the per-service role `role_name` carrying that policy."""
    with root_client(vault_addr, root_token) as c:
        if f"{mount}/" not in c.sys.list_auth_methods()["data"]:
            c.sys.enable_auth_method("approle", path=mount)
        c.sys.create_or_update_acl_policy(
            name=policy_name,
            policy='path "secret/data/payments/*" { capabilities = ["read"] }\n'
            'path "secret/metadata/payments/*" { capabilities = ["list", "read"] }\n',
        )
        c.secrets.kv.v2.create_or_update_secret(
            path="payments/config", secret={"endpoint": "https://payments.example.internal"}, mount_point="secret"
        )
        c.auth.approle.create_or_update_approle(
            role_name,
            token_policies=[policy_name],
            token_ttl=f"{int(token_ttl.total_seconds())}s",
            token_max_ttl=f"{int(token_max_ttl.total_seconds())}s",
            mount_point=mount,
        )
    return SeedResult(
        True, f"AppRole auth at auth/{mount}/; role {role_name!r} with policy {policy_name!r} (read secret/payments/*)"
    )


# ---- the database secrets engine (PostgreSQL) ----------------------------------------------

DEV_USERNAME_TEMPLATE = (
    '{{ printf "jit-%s-%s-%s" (.RoleName | truncate 16) (.DisplayName | replace "token-" "") (random 6)'
    " | truncate 63 | lowercase }}"
)


def dev_role_statements(schema: str = DEV_SCHEMA, table: str = DEV_TABLE) -> tuple[list[str], list[str]]:
    """(creation, revocation) statements of a read-only role on one table."""
    creation = [
        """CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';""",
        f'GRANT USAGE ON SCHEMA "{schema}" TO "{{{{name}}}}";',
        f'GRANT SELECT ON "{schema}"."{table}" TO "{{{{name}}}}";',
    ]
    # End its sessions, drop its grants (here and on shared objects; a read-only role owns
    # nothing) and the role. Idempotent: a role a DBA already dropped does not fail the lease's
    # revocation (Vault runs a statement containing $$ as one, without splitting on ";").
    revocation = [
        """SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';""",
        """DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{{name}}') THEN """
        """EXECUTE format('DROP OWNED BY %I', '{{name}}'); EXECUTE format('DROP ROLE %I', '{{name}}'); END IF; END $$;""",
    ]
    return creation, revocation


def seed_dev_database(
    vault_addr: str,
    root_token: str,
    postgres_dsn: str,
    *,
    mount: str = "database",
    connection: str = "jitaccess-postgres",
    role: str = "platform-readonly",
    default_ttl: int = 300,
    max_ttl: int = 8 * 3600,
) -> SeedResult:
    """Dev stack: a small table in PostgreSQL, the database secrets engine at `mount` with a
    connection to it, and the read-only role `role` (SELECT on jitaccess_demo.accounts).

    Returns a falsy SeedResult, with the reason, when PostgreSQL is unreachable (or psycopg
    is missing); Vault errors raise."""
    parts = _seed_postgres(postgres_dsn)
    if isinstance(parts, SeedResult):
        return parts
    where = f"{parts['host']}:{parts['port']} (database {parts['dbname']!r}, user {parts['user']!r})"
    with root_client(vault_addr, root_token) as c:
        if f"{mount}/" not in c.sys.list_mounted_secrets_engines()["data"]:
            c.sys.enable_secrets_engine("database", path=mount)
        url = (
            f"postgresql://{{{{username}}}}:{{{{password}}}}@{parts['host']}:{parts['port']}/{parts['dbname']}"
            f"?sslmode={parts.get('sslmode', 'disable')}"
        )
        c.secrets.database.configure(
            name=connection,
            plugin_name="postgresql-database-plugin",
            connection_url=url,
            username=parts["user"],
            password=parts.get("password", ""),
            allowed_roles=[role],
            verify_connection=True,
            username_template=DEV_USERNAME_TEMPLATE,
            mount_point=mount,
        )
        creation, revocation = dev_role_statements()
        c.secrets.database.create_role(
            name=role,
            db_name=connection,
            creation_statements=creation,
            revocation_statements=revocation,
            default_ttl=f"{default_ttl}s",
            max_ttl=f"{max_ttl}s",
            mount_point=mount,
        )
    return SeedResult(
        True,
        f"database secrets engine at {mount}/ → PostgreSQL {where}; role {role!r} "
        f"(SELECT on {DEV_SCHEMA}.{DEV_TABLE}, default_ttl {default_ttl}s, max_ttl {max_ttl}s)",
    )


def _seed_postgres(postgres_dsn: str) -> dict[str, str] | SeedResult:
    """The demo table in PostgreSQL; the DSN's parts (host, port, dbname, user, ...), or a falsy
    SeedResult saying why not."""
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return SeedResult(
            False, "psycopg is not installed (pip install 'jitaccess[postgres]'): database engine not configured"
        )
    dsn = plain_dsn(postgres_dsn)
    try:
        parts = {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    except psycopg.Error as e:
        return SeedResult(False, f"postgres DSN {postgres_dsn!r} is invalid: {e}")
    parts = {"host": "127.0.0.1", "port": "5432", "dbname": "postgres", "user": "postgres", **parts}
    try:
        with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{DEV_SCHEMA}"')
            conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{DEV_SCHEMA}"."{DEV_TABLE}" (id int PRIMARY KEY, name text NOT NULL)'
            )
            conn.execute(
                f'INSERT INTO "{DEV_SCHEMA}"."{DEV_TABLE}" VALUES (1, %s), (2, %s) ON CONFLICT DO NOTHING',
                ("acme", "globex"),
            )
    except psycopg.Error as e:
        where = f"{parts['host']}:{parts['port']} (database {parts['dbname']!r}, user {parts['user']!r})"
        return SeedResult(
            False, f"PostgreSQL is not reachable at {where}: {str(e).strip()}; database secrets engine not configured"
        )
    return parts


# ---- AWS (moto_server) ----------------------------------------------------------------------

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
    instance_arn, store_id = _dev_instance(sso)
    ps_arn = _dev_permission_set(sso, instance_arn)
    for user in users:
        _dev_user(ids, iam, store_id, user)
    if _exists_ok(lambda: iam.create_group(GroupName=DEV_IAM_GROUP), "EntityAlreadyExists"):
        iam.attach_group_policy(GroupName=DEV_IAM_GROUP, PolicyArn=DEV_READONLY_POLICY)
    return {
        "account_id": account,
        "region": region,
        "endpoint": endpoint,
        "instance_arn": instance_arn,
        "identity_store_id": store_id,
        "permission_set_name": DEV_PERMISSION_SET,
        "permission_set_arn": ps_arn,
        "iam_group": DEV_IAM_GROUP,
        "role_arn": _dev_role(iam, account),
    }


def _exists_ok(create: Callable[[], Any], code: str) -> bool:
    """Run `create`; False when AWS answers `code` (it is there already)."""
    try:
        create()
    except ClientError as e:
        if error_code(e) != code:
            raise
        return False
    return True


def _dev_instance(sso: Any) -> tuple[str, str]:
    """(instance ARN, identity store ID) of the first Identity Center instance (created if none)."""
    instances = sso.list_instances().get("Instances") or []
    if not instances:
        sso.create_instance(Name="jitaccess-dev")
        instances = sso.list_instances()["Instances"]
    return instances[0]["InstanceArn"], instances[0]["IdentityStoreId"]


def _dev_permission_set(sso: Any, instance_arn: str) -> str:
    for arn in sso.list_permission_sets(InstanceArn=instance_arn).get("PermissionSets") or []:
        described = sso.describe_permission_set(InstanceArn=instance_arn, PermissionSetArn=arn)["PermissionSet"]
        if described.get("Name") == DEV_PERMISSION_SET:
            return str(arn)
    ps_arn = sso.create_permission_set(
        InstanceArn=instance_arn,
        Name=DEV_PERMISSION_SET,
        Description="Read-only access to the platform account",
        SessionDuration="PT1H",
    )["PermissionSet"]["PermissionSetArn"]
    sso.attach_managed_policy_to_permission_set(
        InstanceArn=instance_arn, PermissionSetArn=ps_arn, ManagedPolicyArn=DEV_READONLY_POLICY
    )
    return str(ps_arn)


def _dev_user(ids: Any, iam: Any, store_id: str, user: str) -> None:
    """An Identity Store user and an IAM user, both named `user`."""
    try:
        ids.get_user_id(
            IdentityStoreId=store_id,
            AlternateIdentifier={"UniqueAttribute": {"AttributePath": "userName", "AttributeValue": user}},
        )
    except ClientError as e:
        if error_code(e) != "ResourceNotFoundException":
            raise
        ids.create_user(
            IdentityStoreId=store_id,
            UserName=user,
            DisplayName=user,
            Name={"GivenName": user, "FamilyName": "dev"},
            Emails=[{"Value": f"{user}@example.test", "Primary": True}],
        )
    _exists_ok(
        lambda: iam.create_user(UserName=user, Tags=[{"Key": "managed_by", "Value": "jitaccess-dev"}]),
        "EntityAlreadyExists",
    )


def role_trust(account: str) -> dict[str, Any]:
    """A role's trust policy: assumable, with session tags and SourceIdentity, from the account."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
            }
        ],
    }


def _dev_role(iam: Any, account: str) -> str:
    """The deploy role handed out as STS sessions; its ARN."""
    created = _exists_ok(
        lambda: iam.create_role(
            RoleName=DEV_ROLE,
            AssumeRolePolicyDocument=json.dumps(role_trust(account)),
            MaxSessionDuration=3600,
            Description="jitaccess dev: deploy role handed out as STS sessions",
        ),
        "EntityAlreadyExists",
    )
    if created:
        iam.attach_role_policy(RoleName=DEV_ROLE, PolicyArn=DEV_READONLY_POLICY)
    return str(iam.get_role(RoleName=DEV_ROLE)["Role"]["Arn"])
