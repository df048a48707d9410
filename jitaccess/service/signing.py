"""The API's side of signed commands: a Temporal client interceptor that signs every workflow
start and update whose argument is a command model (it has an `auth` field) with the API's key,
bound to the workflow ID and the action. The API is the component that authenticated the caller,
so the principal inside the command is the one it signed in; nothing else holds this key."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from temporalio.client import (
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)

from jitaccess.domain.commands import CommandSigner


def is_command(arg: object) -> bool:
    return isinstance(arg, BaseModel) and "auth" in type(arg).model_fields


class CommandSigningInterceptor(Interceptor):
    def __init__(self, signer: CommandSigner) -> None:
        self.signer = signer

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _SigningOutbound(next, self.signer)


class _SigningOutbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, signer: CommandSigner) -> None:
        super().__init__(next)
        self._signer = signer

    def _sign(self, args: Any, target: str, action: str) -> Any:
        if len(args) != 1 or not is_command(args[0]):
            return args
        return [self._signer.sign(args[0], target, action, datetime.now(UTC), secrets.token_hex(16))]

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        input.args = self._sign(input.args, input.id, f"start:{input.workflow}")
        return await super().start_workflow(input)

    async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> WorkflowUpdateHandle[Any]:
        input.args = self._sign(input.args, input.id, input.update)
        return await super().start_workflow_update(input)
