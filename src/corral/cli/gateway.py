"""``corral upstreams``, ``corral models``, ``corral usage`` (clients of the API), and
``corral gateway`` (the operator command that runs the gateway as its own processes)."""

from __future__ import annotations

import os
import sys
from typing import Any
from urllib.parse import quote

import typer

from corral.cli import output, sessions
from corral.cli.output import JsonOpt

upstreams_app = typer.Typer(no_args_is_help=True)
models_app = typer.Typer(no_args_is_help=True)


_KIND_HELP = "'openai' (any OpenAI-compatible API) or 'anthropic'."
_URL_HELP = "As given to the official SDK, e.g. https://api.openai.com/v1."
_TARGET_HELP = "UPSTREAM:MODEL; repeat for fallbacks, tried in order."
_BY_HELP = (
    "Comma-separated: model, key_id, session_id, agent_id, team_id, user_id, upstream_id, "
    "outcome, api, day."
)


def _ref(ref: str) -> str:
    return quote(ref, safe="")


# -- upstreams ---------------------------------------------------------------------------------


@upstreams_app.command("list")
def list_upstreams(ctx: typer.Context, json_: bool = JsonOpt) -> None:
    """Where model calls go."""
    state = output.use(ctx, json_)
    page = state.client.get("/v1/gateway/upstreams")
    if state.json:
        output.emit_json(page)
        return
    output.table(
        ["NAME", "KIND", "BASE URL", "KEY", "TIMEOUT", "ID"],
        ([u["name"], u["kind"], u["base_url"], "set" if u["has_key"] else "-",
          f"{u['timeout_seconds']:g}s", u["id"]] for u in page["data"]),
        empty="no upstreams",
    )  # fmt: skip


@upstreams_app.command("add")
def add_upstream(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A name for it, e.g. 'openai'."),
    kind: str = typer.Option(..., "--kind", help=_KIND_HELP),
    base_url: str = typer.Option(..., "--base-url", help=_URL_HELP),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", metavar="VAR",
        help="Read the upstream's API key from this environment variable (never a flag).",
    ),
    timeout: float = typer.Option(600.0, "--timeout", help="Longest upstream silence, seconds."),
    json_: bool = JsonOpt,
) -> None:  # fmt: skip
    """Add an upstream (admins); its key is sealed in Corral's vault."""
    import os

    state = output.use(ctx, json_)
    body: dict[str, Any] = {"name": name, "kind": kind, "base_url": base_url,
                            "timeout_seconds": timeout}  # fmt: skip
    if api_key_env:
        value = os.environ.get(api_key_env)
        if not value:
            raise typer.BadParameter(f"${api_key_env} is empty", param_hint="--api-key-env")
        body["api_key"] = value
    created = state.client.post("/v1/gateway/upstreams", body)
    if state.json:
        output.emit_json(created)
        return
    output.done(f"Upstream {created['name']} ({created['kind']}) at {created['base_url']}")


@upstreams_app.command("delete")
def delete_upstream(
    ctx: typer.Context, ref: str = typer.Argument(..., help="Name or id."), json_: bool = JsonOpt
) -> None:
    """Remove an upstream that no model targets."""
    state = output.use(ctx, json_)
    state.client.request("DELETE", f"/v1/gateway/upstreams/{_ref(ref)}")
    if state.json:
        output.emit_json({"deleted": ref})
        return
    output.done(f"Deleted upstream {ref}")


# -- models ------------------------------------------------------------------------------------


@models_app.command("list")
def list_models(ctx: typer.Context, json_: bool = JsonOpt) -> None:
    """Model names callers may use, and where each goes (in fallback order)."""
    state = output.use(ctx, json_)
    page = state.client.get("/v1/gateway/models")
    ups = {u["id"]: u["name"] for u in state.client.get("/v1/gateway/upstreams")["data"]}
    if state.json:
        output.emit_json(page)
        return
    output.table(
        ["MODEL", "ALIASES", "TARGETS", "MAX OUTPUT"],
        ([m["name"], ", ".join(m["aliases"]) or "-",
          " -> ".join(f"{ups.get(t['upstream_id'], t['upstream_id'])}:{t['model']}"
                      for t in m["targets"]),
          m["max_output_tokens"] or "-"] for m in page["data"]),
        empty="no models",
    )  # fmt: skip


@models_app.command("set")
def set_model(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model name callers use."),
    target: list[str] = typer.Option(..., "--target", help=_TARGET_HELP),
    alias: list[str] = typer.Option([], "--alias", help="Another name for it (repeatable)."),
    max_output: int | None = typer.Option(None, "--max-output-tokens", min=1,
                                          help="Bound injected when a request sets none."),
    json_: bool = JsonOpt,
) -> None:  # fmt: skip
    """Create or replace a model route (admins)."""
    state = output.use(ctx, json_)
    targets = []
    for spec in target:
        upstream, sep, model = spec.partition(":")
        if not sep or not upstream or not model:
            raise typer.BadParameter(f"{spec!r} is not UPSTREAM:MODEL", param_hint="--target")
        targets.append({"upstream": upstream, "model": model})
    body = {"targets": targets, "aliases": alias, "max_output_tokens": max_output}
    route = state.client.request("PUT", f"/v1/gateway/models/{_ref(name)}", json_body=body)
    if state.json:
        output.emit_json(route)
        return
    output.done(f"Model {route['name']} -> {len(route['targets'])} target(s)")


@models_app.command("delete")
def delete_model(
    ctx: typer.Context, name: str = typer.Argument(...), json_: bool = JsonOpt
) -> None:
    """Stop serving a model name."""
    state = output.use(ctx, json_)
    state.client.request("DELETE", f"/v1/gateway/models/{_ref(name)}")
    if state.json:
        output.emit_json({"deleted": name})
        return
    output.done(f"Deleted model {name}")


# -- usage -------------------------------------------------------------------------------------


def usage(
    ctx: typer.Context,
    by: str = typer.Option("model", "--by", help=_BY_HELP),
    since: str | None = typer.Option(None, "--since", help="ISO time or span (2h, 7d)."),
    session: str | None = typer.Option(None, "--session", help="Only this session's calls."),
    agent: str | None = typer.Option(None, "--agent", help="Only this agent's calls."),
    model: str | None = typer.Option(None, "--model", help="Only this model."),
    json_: bool = JsonOpt,
) -> None:  # fmt: skip
    """Model calls through the gateway: calls, tokens, cost and latency per group."""
    state = output.use(ctx, json_)
    params = {"group_by": by, "since": output.time_option("--since", since),
              "session_id": session, "agent_id": agent, "model": model}  # fmt: skip
    result = state.client.get("/v1/usage", **{k: v for k, v in params.items() if v})
    if state.json:
        output.emit_json(result)
        return
    groups = result["group_by"]
    output.table(
        [*(g.upper() for g in groups), "CALLS", "ERRORS", "IN TOKENS", "OUT TOKENS", "COST",
         "AVG MS", "AVG TTFT MS"],
        ([*(r.get(g) or "-" for g in groups), r["calls"], r["errors"], r["input_tokens"],
          r["output_tokens"], f"${r['cost_usd']:.4f}",
          f"{r['avg_latency_ms']:.1f}" if r["avg_latency_ms"] is not None else "-",
          f"{r['avg_ttft_ms']:.1f}" if r["avg_ttft_ms"] is not None else "-"]
         for r in result["data"]),
        empty="no model calls in that window",
    )  # fmt: skip


# -- the gateway process -----------------------------------------------------------------------


def gateway(
    host: str | None = typer.Option(None, "--host", help="Interface (default CORRAL_HOST)."),
    port: int = typer.Option(8701, "--port", help="Port."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (one per core)."),
) -> None:
    """Run the LLM gateway alone, in N worker processes sharing the ledger via the database."""
    from corral.cli.server import _settings

    settings = _settings(host=host)  # refuses bad CORRAL_* settings here, with a clear error
    output.done(f"Corral gateway on http://{settings.host}:{port} ({workers} worker(s))")
    sys.stdout.flush()
    sys.stderr.flush()
    # A fresh interpreter with only the gateway's modules (corral.gateway.serve), not this CLI's.
    argv = ["--host", settings.host, "--port", str(port), "--workers", str(workers)]
    os.execv(sys.executable, [sys.executable, "-m", "corral.gateway.serve", *argv])


def register(app: typer.Typer) -> None:
    app.add_typer(upstreams_app, name="upstreams", help="Gateway upstreams (model providers).")
    app.add_typer(models_app, name="models", help="Gateway model routes and fallbacks.")
    app.command("usage", help="Model-call usage through the gateway.")(usage)
    app.command("gateway", rich_help_panel="Server-side (operators)")(gateway)
    sessions.app.command("gateway-key")(session_key)


def session_key(
    ctx: typer.Context,
    session_id: str = typer.Argument(..., help="The session whose runtime will use the key."),
    json_: bool = JsonOpt,
) -> None:
    """Mint a short-lived gateway key for one session (give it to the runtime)."""
    state = output.use(ctx, json_)
    minted = state.client.post(f"/v1/sessions/{_ref(session_id)}/gateway-key")
    if state.json:
        output.emit_json(minted)
        return
    output.details([
        ("key", minted["key"]), ("expires", minted["expires_at"]),
        ("OPENAI_BASE_URL", minted["openai_base_url"]),
        ("ANTHROPIC_BASE_URL", minted["anthropic_base_url"]),
    ])  # fmt: skip
    output.warn("The key is shown only once.")
