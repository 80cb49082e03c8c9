"""Policies: governance rules on the org, a team, an agent or a key; every edit is versioned."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from corral.api.deps import Caller, Svc
from corral.api.schemas.common import PageOut
from corral.api.schemas.governance import Policy, PolicyCreate, PolicyUpdate, PolicyVersion
from corral.domain.errors import InvalidRequest

router = APIRouter(prefix="/v1/policies", tags=["policies"])


@router.post("", response_model=Policy, status_code=status.HTTP_201_CREATED)
async def create_policy(body: PolicyCreate, who: Caller, svc: Svc) -> Policy:
    """Attach a rule to `scope` (`org:ID`, `team:ID`, `agent:ID` or `key:ID`).

    `body` by `kind` (patterns are globs: `*` any run, `?` one character):

    * `tool`: `{"effect": "allow"|"deny"|"ask", "tools": ["bash", "mcp__github__*"],
      "servers": ["github"], "arguments": {"command": {"prefix": "rm "}},
      "approvers": {"roles": ["team_admin"], "users": ["usr_..."]}, "ask_ttl_seconds": 900}`.
      It names `tools` or `servers` (or both); an argument test is one of `prefix`, `glob`,
      `equals`, `regex` (a bare string is a glob), on a dotted path into the arguments. Among
      matching rules deny beats ask beats allow; `ask` waits for one of `approvers` (default:
      team admins).
    * `model`: `{"effect": "allow"|"deny", "models": ["gpt-4o*"]}`; `runtime`: the same with
      `"runtimes"` (matched against the runtime's id and kind). Each scope with allow rules admits
      only what they list; any matching deny rule denies.
    * `limits`: numbers >= 0 among `max_open_sessions`, `max_running_turns` (counted at the
      scope), `requests_per_minute`, `max_turns_per_session`, `max_tool_calls_per_turn`,
      `max_tool_calls_per_session`, `max_turn_seconds`, `max_session_cost_usd`,
      `loop_guard_repeats`, `turn_estimate_usd` (per session or key; the tightest wins).

    A malformed body is refused with `invalid_policy`. The org scope needs an admin; a team's
    scopes need that team's admin.
    """
    policy = await svc.governance.create_policy(
        who,
        scope=body.scope,
        kind=body.kind,
        body=body.body,
        enabled=body.enabled,
        description=body.description,
    )
    return Policy.of(policy)


@router.get("", response_model=PageOut[Policy])
async def list_policies(
    who: Caller,
    svc: Svc,
    scope: str | None = Query(default=None, max_length=60),
    kind: str | None = Query(default=None, max_length=20),
    cursor: str | None = Query(default=None, max_length=500),
    limit: int | None = Query(default=None, ge=1, le=200),
) -> PageOut[Policy]:
    """Policies you can see (admins: all), newest first; filter by `scope` and `kind`."""
    page = await svc.governance.list_policies(
        who, scope=scope, kind=kind, cursor=cursor, limit=limit
    )
    return PageOut[Policy](data=[Policy.of(p) for p in page.items], next_cursor=page.next_cursor)


@router.get("/{policy_id}", response_model=Policy)
async def get_policy(policy_id: str, who: Caller, svc: Svc) -> Policy:
    return Policy.of(await svc.governance.get_policy(who, policy_id))


@router.patch("/{policy_id}", response_model=Policy)
async def update_policy(policy_id: str, body: PolicyUpdate, who: Caller, svc: Svc) -> Policy:
    """Change the body, `enabled` or the description: a new version, effective on every replica.

    Send `version` to change only that version (409 `version_mismatch` if someone else won).
    """
    if body.body is None and body.enabled is None and body.description is None:
        raise InvalidRequest("nothing to update", code="empty_update")
    policy = await svc.governance.update_policy(
        who,
        policy_id,
        body=body.body,
        enabled=body.enabled,
        description=body.description,
        expected_version=body.version,
    )
    return Policy.of(policy)


@router.delete("/{policy_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_policy(policy_id: str, who: Caller, svc: Svc) -> Response:
    await svc.governance.delete_policy(who, policy_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{policy_id}/versions", response_model=PageOut[PolicyVersion])
async def list_policy_versions(policy_id: str, who: Caller, svc: Svc) -> PageOut[PolicyVersion]:
    """Every version, oldest first, including the one that deleted the policy."""
    history = await svc.governance.policy_history(who, policy_id)
    return PageOut[PolicyVersion](
        data=[PolicyVersion.model_validate(v) for v in history], next_cursor=None
    )
