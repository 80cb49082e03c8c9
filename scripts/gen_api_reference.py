"""Render docs/api.md from the app's OpenAPI document: ``python scripts/gen_api_reference.py``.

The test suite checks the committed page is current, so the reference cannot drift from the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from corral.api.app import create_app
from corral.config import Settings

OUT = Path(__file__).resolve().parent.parent / "docs" / "api.md"

HEADER = """# API reference

Generated from `/openapi.json` by `scripts/gen_api_reference.py`; do not edit by hand.
A running server also serves the interactive docs at `/docs`.

Conventions: JSON bodies; `Authorization: Bearer ck_...` on every `/v1` call; ids are opaque and
prefixed (`team_`, `usr_`, `key_`, `rt_`, `agt_`, `ses_`, `trn_`, `apr_`, `pol_`, `bud_`);
lists are `{"data": [...], "next_cursor": "..."}`, newest first, and take `cursor` and `limit`
(1-200); creates honour `Idempotency-Key` where noted. Money is in USD (`limit_usd`,
`spent_usd`, ...). Every error is RFC 9457 `application/problem+json` with a stable `code`:

| code | status | meaning |
|---|---|---|
| `validation` | 422 | a field is missing, of the wrong type, out of range, or unknown |
| `malformed_json` | 400 | the body is not JSON |
| `payload_too_large` | 413 | the body exceeds `CORRAL_MAX_BODY_BYTES` (1 MiB) |
| `unauthenticated`, `key_revoked`, `key_expired` | 401 | no key, a bad key, a revoked or expired key |
| `forbidden` | 403 | the key's role may not do this |
| `not_found` | 404 | no such resource, or it belongs to another team |
| `scope_not_found` | 404 | a policy or budget `scope` names nothing in your organization |
| `conflict` | 409 | a name already taken, a state that does not allow this |
| `idempotency_mismatch` | 409 | the `Idempotency-Key` was used with another body |
| `agent_paused`, `agent_deleted` | 409 | the agent refuses new sessions and turns |
| `session_busy` | 409 | a turn is already running |
| `version_mismatch` | 409 | the policy is no longer at the `version` the edit expected |
| `approval_not_pending`, `decision_not_offered` | 409 | the approval cannot take this answer |
| `budget_exceeded` | 402 | a budget has no room for this turn or call; `scope` names it (see docs/governance.md) |
| `rate_limited`, `limit_exceeded` | 429 | the key's request rate (`Retry-After`), or a concurrency or turn limit of a policy |
| `model_not_allowed`, `model_denied`, `runtime_not_allowed`, `runtime_denied`, `model_unpriced` | 403 | an allowlist or denylist refused it; `policy_id`, `policy_version` and `scope` name the rule |
| `not_an_approver` | 403 | the approval's rule names other approvers |
| `approval_expired` | 409 | the approval timed out and resolves to deny |
| `invalid_filter` | 422 | a kill switch without a filter, or with an unknown one |
| `runtime_unreachable` | 502 | the runtime did not answer (the session records the error) |
| `runtime_error` | 502 | the runtime answered with an error or garbage |
| `invalid_cursor`, `unknown_runtime_kind`, `invalid_base_url`, ... | 422 | specific validation failures |
| `invalid_policy` | 422 | a policy body that does not compile |
| `invalid_scope`, `invalid_period` | 422 | a scope or budget period Corral does not know |
| `invalid_timezone` | 422 | a budget `timezone` that is not an IANA name |
| `empty_update` | 422 | a PATCH that changes nothing |
| `invalid_characters` | 422 | text with a NUL character (PostgreSQL cannot store it) |

"""


def _schema_name(ref: dict[str, Any]) -> str:
    if "$ref" in ref:
        return "`" + str(ref["$ref"]).rsplit("/", 1)[-1] + "`"
    if ref.get("type") == "array" and "items" in ref:
        return _schema_name(ref["items"]) + "[]"
    return "`" + str(ref.get("type", "object")) + "`"


def _field_rows(name: str, components: dict[str, Any]) -> list[str]:
    schema = components.get(name, {})
    required = set(schema.get("required", []))
    rows = []
    for field, spec in schema.get("properties", {}).items():
        kind = (
            spec.get("type")
            or " | ".join(
                str(x.get("type") or x.get("$ref", "").rsplit("/", 1)[-1])
                for x in spec.get("anyOf", [])
            )
            or _schema_name(spec).strip("`")
        )
        rows.append(f"| `{field}` | {kind} | {'yes' if field in required else ''} |")
    return rows


def render() -> str:
    spec = create_app(Settings(database_url="sqlite://")).openapi()
    components = spec.get("components", {}).get("schemas", {})
    lines = [HEADER]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            by_tag.setdefault((op.get("tags") or ["other"])[0], []).append(
                (method.upper(), path, op)
            )
    for tag, ops in by_tag.items():
        lines.append(f"## {tag.capitalize()}\n")
        for method, path, op in ops:
            lines.append(f"### `{method} {path}`\n")
            if op.get("description") or op.get("summary"):
                lines.append((op.get("description") or op.get("summary")).strip() + "\n")
            params = [p for p in op.get("parameters", []) if p["in"] in ("query", "header")]
            if params:
                lines.append("| parameter | in | type |\n|---|---|---|")
                for p in params:
                    lines.append(
                        f"| `{p['name']}` | {p['in']} | {_schema_name(p.get('schema', {})).strip('`')} |"
                    )
                lines.append("")
            body = (
                op.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema")
            )
            if body:
                name = _schema_name(body).strip("`")
                lines.append(f"Body `{name}`:\n\n| field | type | required |\n|---|---|---|")
                lines += _field_rows(name, components)
                lines.append("")
            for status, resp in op.get("responses", {}).items():
                if status.startswith("2"):
                    content = resp.get("content", {})
                    schema = (content.get("application/json") or {}).get("schema")
                    shown = (
                        _schema_name(schema)
                        if schema
                        else ", ".join(f"`{c}`" for c in content) or "no body"
                    )
                    lines.append(f"Returns **{status}**: {shown}\n")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.exists() and OUT.read_text() == text else 1)
    OUT.write_text(text)
    print(json.dumps({"written": str(OUT), "bytes": len(text)}))
