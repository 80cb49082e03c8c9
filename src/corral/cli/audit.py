"""``corral audit``: search the trail (through the API), and, on the server, verify and export it.

``list`` and ``public-key`` are client commands like the rest of the CLI. ``verify`` and
``export`` are operator commands: they read the database itself (``CORRAL_DATABASE_URL`` or
``--database-url``), so they work with the server down and trust nothing it says. ``verify
--file`` checks an export anywhere, no database needed.
"""

from __future__ import annotations

import asyncio
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from corral.cli import output
from corral.cli.client import CliError
from corral.cli.output import JsonOpt
from corral.cli.server import _settings, _where

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from corral.audit.chain import Report

app = typer.Typer(no_args_is_help=True)

DatabaseOpt = typer.Option(
    None, "--database-url", help="Database to read (default: CORRAL_DATABASE_URL)."
)


class DecisionChoice(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ASK = "ask"


class OutcomeChoice(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    PENDING = "pending"
    ERROR = "error"


def _actor(record: dict[str, Any]) -> str:
    if record["actor_type"] == "system":
        return "corral"
    who = record["user_id"] or record["key_id"] or "-"
    return f"{who} ({record['role']})" if record.get("role") else who


@app.command("list")
def list_records(
    ctx: typer.Context,
    action: str | None = typer.Option(None, "--action", help="e.g. key.revoke, tool.use."),
    resource: str | None = typer.Option(
        None, "--resource", help="TYPE or TYPE:ID, e.g. session or session:ses_..."
    ),
    actor_key: str | None = typer.Option(None, "--actor-key", help="Key id that acted."),
    actor_user: str | None = typer.Option(None, "--actor-user", help="User id that acted."),
    decision: DecisionChoice | None = typer.Option(None, "--decision"),
    outcome: OutcomeChoice | None = typer.Option(None, "--outcome"),
    since: str | None = typer.Option(None, "--since", help="ISO 8601 or a span like 2h."),
    until: str | None = typer.Option(None, "--until", help="ISO 8601 or a span like 2h."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="Newest N records."),
    json_: bool = JsonOpt,
) -> None:
    """Audit records, newest first (admins see the org; others their team and themselves)."""
    state = output.use(ctx, json_)
    kind, _, resource_id = (resource or "").partition(":")
    params = {
        "action": action, "resource_type": kind or None, "resource_id": resource_id or None,
        "key_id": actor_key, "user_id": actor_user,
        "decision": decision.value if decision else None,
        "outcome": outcome.value if outcome else None,
        "since": output.time_option("--since", since),
        "until": output.time_option("--until", until), "limit": min(limit, 200),
    }  # fmt: skip
    records: list[dict[str, Any]] = []
    for page in state.client.pages("/v1/audit", params):
        records += page["data"]
        if len(records) >= limit:
            break
    records = records[:limit]
    if state.json:
        output.emit_json({"data": records, "next_cursor": None})
        return
    output.table(
        ["SEQ", "TIME", "ACTOR", "ACTION", "RESOURCE", "DECISION", "POLICY", "OUTCOME"],
        (_row(r) for r in records),
        empty="no audit records",
    )


def _row(r: dict[str, Any]) -> list[Any]:
    policy = f"{r['policy_id']}@{r['policy_version']}" if r["policy_id"] else None
    resource = f"{r['resource_type']}:{r['resource_id'] or '-'}"
    return [r["seq"], output.when(r["ts"]), _actor(r), r["action"], resource, r["decision"],
            policy, r["outcome"]]  # fmt: skip


@app.command("public-key")
def public_key(
    ctx: typer.Context,
    out: Path | None = typer.Option(None, "--out", help="Write the PEM here (default: stdout)."),
) -> None:
    """The Ed25519 public key that verifies checkpoints (pin it for `verify --public-key`)."""
    state = output.use(ctx)
    pem, headers = state.client.text("/v1/audit/public-key")
    key_id = headers.get("x-corral-audit-key-id", "?")
    if out is None:
        sys.stdout.write(pem)
        return
    out.write_text(pem)
    output.done(f"Wrote audit public key {key_id} to {out}")


# -- server-side -------------------------------------------------------------------------------


def _pinned(path: Path | None) -> dict[str, Ed25519PublicKey] | None:
    if path is None:
        return None
    from corral.audit.signing import key_id_of, load_public

    try:
        key = load_public(path.read_text())
    except (OSError, ValueError) as exc:
        raise CliError("bad_public_key", f"{path}: {exc}") from None
    return {key_id_of(key): key}


async def _verify_database(
    url: str, from_checkpoint: bool, keys: dict[str, Ed25519PublicKey] | None
) -> Report:
    from corral.audit.service import verify_database
    from corral.store.db import Database

    db = Database(url)
    try:
        return await verify_database(db, from_checkpoint=from_checkpoint, keys=keys)
    except Exception as exc:
        raise CliError("database_error", f"{_where(url)}: {exc}") from None
    finally:
        await db.dispose()


def _verify_file(
    path: Path, from_checkpoint: bool, keys: dict[str, Ed25519PublicKey] | None
) -> Report:
    from corral.audit.export import verify_file

    try:
        with path.open(encoding="utf-8") as lines:
            return verify_file(lines, from_checkpoint=from_checkpoint, keys=keys)
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError("bad_file", f"{path}: {exc}") from None


@app.command("verify")
def verify(
    ctx: typer.Context,
    from_checkpoint: bool = typer.Option(
        False, "--from-checkpoint", help="Start at the last checkpoint whose signature verifies."
    ),
    file: Path | None = typer.Option(None, "--file", help="Verify an export, not the database."),
    public_key_file: Path | None = typer.Option(
        None, "--public-key", help="PEM to check checkpoints with (default: the stored keys)."
    ),
    database_url: str | None = DatabaseOpt,
    json_: bool = JsonOpt,
) -> None:
    """Prove the trail untouched, or name the first bad record; exit 1 if it is not."""
    state = output.use(ctx, json_)
    keys = _pinned(public_key_file)
    if file is not None:
        where, report = str(file), _verify_file(file, from_checkpoint, keys)
    else:
        url = database_url or _settings().database_url
        where, report = _where(url), asyncio.run(_verify_database(url, from_checkpoint, keys))
    problem = report.problem
    if state.json:
        output.emit_json({
            "ok": report.ok, "source": where, "records": report.records,
            "first_seq": report.first_seq, "last_seq": report.last_seq,
            "checkpoints": report.checkpoints, "anchor": report.anchor,
            "problem": None if problem is None else {
                "seq": problem.seq, "fault": problem.fault.value, "detail": problem.detail},
        })  # fmt: skip
    elif problem is None:
        span = f"seq {report.first_seq}..{report.last_seq}" if report.records else "empty"
        start = f", from the checkpoint at seq {report.anchor}" if report.anchor else ""
        output.done(f"audit trail verified: {report.records} records ({span}), "
                    f"{report.checkpoints} signed checkpoints{start} ({where})")  # fmt: skip
    else:
        output.stderr.print(
            f"audit trail verification FAILED at seq {problem.seq}: {problem.fault.value}: "
            f"{problem.detail} ({where})", style="red", markup=False,
        )  # fmt: skip
    if problem is not None:
        raise typer.Exit(1)


async def _export(url: str, since: int, out: Path | None) -> tuple[int, int]:
    from corral.audit.service import export_lines
    from corral.store.db import Database

    db, records, checkpoints = Database(url), 0, 0
    sink = sys.stdout if out is None else out.open("w", encoding="utf-8")
    try:
        async for line in export_lines(db, since):
            sink.write(line + "\n")
            checkpoints += line.startswith('{"checkpoint"')
            records += not line.startswith(('{"export"', '{"public_key"', '{"checkpoint"'))
    except OSError as exc:
        raise CliError("write_failed", f"{out}: {exc}") from None
    except Exception as exc:
        raise CliError("database_error", f"{_where(url)}: {exc}") from None
    finally:
        if out is not None:
            sink.close()
        await db.dispose()
    return records, checkpoints


@app.command("export")
def export(
    out: Path = typer.Option(..., "--out", help="File to write ('-' for stdout)."),
    since: int = typer.Option(0, "--since", min=0, help="Only records after this seq."),
    database_url: str | None = DatabaseOpt,
) -> None:
    """Write the trail as JSON Lines (records, signed checkpoints, public keys) for a SIEM."""
    url = database_url or _settings().database_url
    target = None if str(out) == "-" else out
    records, checkpoints = asyncio.run(_export(url, since, target))
    if target is not None:
        output.done(f"exported {records} records and {checkpoints} checkpoints to {out}")
