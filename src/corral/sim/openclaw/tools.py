"""The simulated agent's tools: ``read`` from a virtual workspace, ``write`` (a no-op), and ``exec``
under ``tools.exec.mode = "ask"``, with the approval rules observed on openclaw 2026.9.6.

An exec approval is registered under the CALLER's authority: without ``operator.approvals``
(or admin) it fails to register; with it but no approval-capable client connected (scope
``operator.admin`` + cap ``approvals``), the run is "headless" and denied at once; otherwise the
request goes to every approver and the tool waits for ``exec.approval.resolve``. Commands are
simulated, never run: ``echo X`` prints X, anything else prints nothing.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Any

from corral.sim.openclaw.state import Approval, now_ms

if TYPE_CHECKING:
    from corral.sim.openclaw.runner import RunContext


async def execute(
    ctx: RunContext, call_id: str, name: str, args: dict[str, Any]
) -> tuple[str, bool]:
    files = ctx.config.files
    if name == "read":
        path = str(args.get("path") or "")
        if path in files:
            return files[path], False
        return f"ENOENT: no such file or directory, access '{path}'", True
    if name == "write":
        return f"Wrote {len(str(args.get('content') or ''))} bytes to {args.get('path')}", False
    if name != "exec":
        return f"Tool {name} not found", True
    command = str(args.get("command") or "")
    if ctx.config.exec_ask:
        if not ctx.run.scopes & {"operator.admin", "operator.approvals"}:
            error = (
                "Exec approval registration failed: GatewayClientRequestError: "
                "missing scope: operator.approvals"
            )
            return json.dumps({"status": "error", "tool": "exec", "error": error}, indent=2), True
        decision, approval_id = await _ask(ctx, call_id, command)
        if decision is None:  # the real gateway reports this as a JSON tool error
            error = (
                "exec denied: Headless runs cannot wait for interactive exec approval.\n"
                "Effective host exec policy: security=allowlist ask=on-miss askFallback=deny"
            )
            return json.dumps({"status": "error", "tool": "exec", "error": error}, indent=2), True
        if decision == "deny":
            return f"Exec denied (gateway id={approval_id}, user-denied): {command}", True
    # Commands are simulated, never run: ``echo X`` prints X, anything else prints nothing.
    return (command[5:] if command.startswith("echo ") else ""), False


async def _ask(ctx: RunContext, call_id: str, command: str) -> tuple[str | None, str]:
    """Wait for an operator's decision; None when no approver is connected (headless)."""
    state = ctx.state
    approval_id = str(uuid.uuid4())
    if not state.has_approver():
        return None, approval_id
    created = now_ms()
    request = {
        "command": command,
        "cwd": ctx.config.workspace,
        "host": "gateway",
        "security": "allowlist",
        "ask": "on-miss",
        "allowedDecisions": ["allow-once", "deny"],
        "unavailableDecisions": ["allow-always"],
        "agentId": ctx.session.agent_id,
        "sessionKey": ctx.session.key,
        "runId": ctx.run.run_id,
        "toolCallId": call_id,
    }
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    expires = created + int(ctx.config.approval_ttl_s * 1000)
    approval = Approval(approval_id, request, created, expires, future)
    state.approvals[approval_id] = approval
    state.broadcast("exec.approval.requested", approval.record(), lambda c: c.approver)
    ctx.agent(
        "lifecycle", {"phase": "waiting-approval", "approvalId": approval_id, "toolCallId": call_id}
    )
    try:
        decision = await asyncio.wait_for(future, ctx.config.approval_ttl_s)
    except TimeoutError:
        decision = "deny"
    finally:
        state.approvals.pop(approval_id, None)
    resolved = {
        "id": approval_id,
        "decision": decision,
        "resolvedBy": "gateway-client",
        "ts": now_ms(),
        "request": request,
    }
    state.broadcast("exec.approval.resolved", resolved, lambda c: c.approver)
    ctx.agent(
        "lifecycle",
        {"phase": "approval-resolved", "approvalId": approval_id, "toolCallId": call_id},
    )
    return decision, approval_id
