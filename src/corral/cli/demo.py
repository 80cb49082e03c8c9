"""``corral demo``: Corral on SQLite with three runtimes, a demo org, and keys to try it.

Everything runs in one process: the mock LLM, a simulated OpenCode server, a simulated Claude
Managed Agents service, an A2A agent (built on a2a-sdk), and Corral itself. Each runtime gets a
demo agent, and the first run starts one session on each, so ``corral sessions list`` shows
sessions on all three in one list. The data lives in ``./.corral``; a second run reuses it (the
simulators get new ports each time, so the runtimes' URLs are updated on start; sessions on
the simulated services do not survive their restart, OpenCode's simulator included). The demo
keys are kept in ``.corral/*.key`` (0600) so the walkthrough can be repeated: that is a
convenience of the demo only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import uvicorn

from corral.api.app import create_app
from corral.config import Settings
from corral.domain.errors import Conflict
from corral.domain.gateway import UpstreamKind
from corral.domain.roles import Role
from corral.fleet.agents import AgentFields
from corral.identity.authz import Principal
from corral.services import Services, build
from corral.sim import mock_llm
from corral.sim._server import serve_in_loop
from corral.sim.a2a import create_app as create_a2a_agent
from corral.sim.claude_agents import create_app as create_claude_sim
from corral.sim.opencode import SimConfig
from corral.sim.opencode import create_app as create_opencode_sim
from corral.vault.keyring import write_private

DEMO_TEAM = "demo"
DEMO_UPSTREAM = "mock-llm"
DEMO_MODEL = "mock-model"
DEMO_DEV_EMAIL = "dev@demo.local"
DEMO_AGENT = "helper"
#: The simulated Claude service accepts any key; the demo still keeps one in the vault.
CLAUDE_SIM_KEY = "sk-ant-demo"


@dataclass(frozen=True)
class DemoRuntime:
    name: str
    kind: str
    agent: str
    url: str
    credentials: dict[str, Any] | None = None


def _key_file(settings: Settings, name: str) -> Path:
    return settings.key_file.parent / f"{name}.key"


async def _admin_key(services: Services, settings: Settings) -> str:
    path = _key_file(settings, "admin")
    boot = services.bootstrap
    if boot is not None and boot.key is not None:
        write_private(path, boot.key.plaintext)
        return boot.key.plaintext
    if path.exists():
        return path.read_text().strip()
    raise typer.BadParameter(
        f"this database was bootstrapped outside the demo and {path} is missing; "
        "use your admin key, or remove .corral/ to start the demo afresh"
    )


async def _ensure_demo(
    services: Services, admin_key: str, runtimes: list[DemoRuntime], settings: Settings,
    llm_url: str,
) -> str:  # fmt: skip
    admin = await services.identity.authenticate(admin_key)
    teams = await services.identity.list_teams(admin, None, 200)
    team = next((t for t in teams.items if t.name == DEMO_TEAM), None)
    if team is None:
        team = await services.identity.create_team(admin, DEMO_TEAM)
        # Governance is on from the start: every turn reserves against this, then settles.
        await services.governance.set_budget(
            admin, scope=f"team:{team.id}", limit_usd=50.0, period="monthly",
            timezone="UTC", soft_percent=80,
        )  # fmt: skip
        # The simulators' model, priced so that turns reporting tokens are costed, not charged
        # the unpriced-model estimate.
        await services.prices.set_price(
            admin, "mock-model", input_usd_per_mtok=1.0, output_usd_per_mtok=2.0,
            cache_read_usd_per_mtok=None,
        )  # fmt: skip
    dev_key_path = _key_file(settings, "developer")
    if not dev_key_path.exists():
        try:
            dev = await services.identity.create_user(
                admin,
                name="Demo Developer",
                email=DEMO_DEV_EMAIL,
                team_id=team.id,
                role=Role.DEVELOPER,
            )
        except Conflict:
            users = await services.identity.list_users(admin, team.id, None, 200)
            dev = next(u for u in users.items if u.email == DEMO_DEV_EMAIL)
        issued = await services.identity.create_key(
            admin, name="demo developer", user_id=dev.id, role=None, expires_at=None
        )
        write_private(dev_key_path, issued.plaintext)
    dev_key = dev_key_path.read_text().strip()
    await _ensure_gateway(services, admin, llm_url)
    started = []
    for spec in runtimes:
        if await _ensure_runtime(services, admin, team.id, spec):
            started.append(spec)
    developer = await services.identity.authenticate(dev_key)
    for spec in started:  # one session per new agent, so the fleet list shows every runtime
        agents = await services.agents.list_agents(
            developer, team_id=team.id, runtime_id=None, name=spec.agent, cursor=None, limit=1
        )
        await services.sessions.create(
            developer,
            agent_id=agents.items[0].id,
            input_text=f"hello from the demo, {spec.kind}",
            title=f"first {spec.kind} session",
            idem=None,
        )
    return dev_key


async def _ensure_gateway(services: Services, admin: Principal, llm_url: str) -> None:
    """The LLM gateway routes ``mock-model`` to the simulators' mock LLM (its port changes with
    every run, so the upstream is re-pointed each time)."""
    gateway = services.gateway_admin
    current = {u.name: u for u in await gateway.list_upstreams(admin)}
    if DEMO_UPSTREAM in current:
        await gateway.update_upstream(admin, DEMO_UPSTREAM, {"base_url": f"{llm_url}/v1"})
    else:
        await gateway.create_upstream(
            admin, name=DEMO_UPSTREAM, kind=UpstreamKind.OPENAI, base_url=f"{llm_url}/v1",
            api_key="sk-mock", timeout_seconds=60.0, headers={},
        )  # fmt: skip
    if not any(m.name == DEMO_MODEL for m in await gateway.list_models(admin)):
        await gateway.put_model(
            admin, name=DEMO_MODEL, targets=[(DEMO_UPSTREAM, DEMO_MODEL)], aliases=[],
            max_output_tokens=None, create_only=True,
        )  # fmt: skip


async def _ensure_runtime(
    services: Services, admin: Principal, team_id: str, spec: DemoRuntime
) -> bool:
    """Register (or re-point) a demo runtime and its agent; True when the agent is new."""
    runtimes = await services.runtimes.list_runtimes(admin, kind=None, cursor=None, limit=200)
    runtime = next((v.runtime for v in runtimes.items if v.runtime.name == spec.name), None)
    if runtime is None:
        view = await services.runtimes.register(
            admin, name=spec.name, kind=spec.kind, base_url=spec.url, config={}
        )
        runtime = view.runtime
    else:
        await services.runtimes.update(admin, runtime.id, name=None, base_url=spec.url, config=None)
    if spec.credentials:
        await services.runtimes.put_credentials(
            admin, runtime.id, spec.credentials, team_id=None, agent_id=None
        )
    agents = await services.agents.list_agents(
        admin, team_id=team_id, runtime_id=None, name=spec.agent, cursor=None, limit=1
    )
    if agents.items:
        return False
    fields = AgentFields(spec.agent, runtime.id, "mock/mock-model", "Be brief.", [], {})
    await services.agents.create(admin, team_id, fields)
    return True


def _banner(url: str, admin_key: str, dev_key: str) -> str:
    return f"""
  Corral is running at {url}   (SQLite: ./.corral/corral.db, demo org)
  Runtimes: OpenCode (simulated), Claude Managed Agents (simulated), an A2A agent;
  agents: helper, claude-helper, a2a-helper

  Admin key:      {admin_key}
  Developer key:  {dev_key}

  Try it in another terminal:
    export CORRAL_URL={url}
    export CORRAL_API_KEY={dev_key}
    .venv/bin/corral sessions start --agent {DEMO_AGENT} "hello there"
    .venv/bin/corral sessions start --agent claude-helper "hi Claude"
    .venv/bin/corral sessions list
    .venv/bin/corral runtimes list
    .venv/bin/corral budgets list          # the demo team's $50 monthly budget, spent so far

  The LLM gateway (OpenAI and Anthropic wire formats; the model is the mock LLM's):
    curl -s $CORRAL_URL/v1/chat/completions -H "Authorization: Bearer $CORRAL_API_KEY" \\
      -H 'content-type: application/json' \\
      -d '{{"model": "{DEMO_MODEL}", "messages": [{{"role": "user", "content": "hi"}}]}}'
    .venv/bin/corral usage --by model      # calls, tokens and cost through the gateway
    curl -s -H "Authorization: Bearer $CORRAL_API_KEY" $CORRAL_URL/v1/sessions

  API docs: {url}/docs     Stop with Ctrl-C.
"""


async def run_demo(settings: Settings) -> None:
    llm_url, stop_llm = await serve_in_loop(mock_llm.create_app())
    sim_url, stop_sim = await serve_in_loop(create_opencode_sim(SimConfig(llm_url=llm_url)))
    claude_url, stop_claude = await serve_in_loop(create_claude_sim(llm_url=llm_url))
    a2a_url, stop_a2a = await serve_in_loop(create_a2a_agent(llm_url))
    runtimes = [
        DemoRuntime("opencode-sim", "opencode", DEMO_AGENT, sim_url),
        DemoRuntime(
            "claude-sim", "claude_agents", "claude-helper", claude_url, {"api_key": CLAUDE_SIM_KEY}
        ),
        DemoRuntime("a2a-agent", "a2a", "a2a-helper", a2a_url),
    ]
    services = await build(settings)
    try:
        admin_key = await _admin_key(services, settings)
        dev_key = await _ensure_demo(services, admin_key, runtimes, settings, llm_url)
        app = create_app(services=services)
        config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning")
        server = uvicorn.Server(config)
        services.start()
        typer.echo(_banner(f"http://{settings.host}:{settings.port}", admin_key, dev_key))
        await server.serve()
    finally:
        await services.aclose()
        for stop in (stop_a2a, stop_claude, stop_sim, stop_llm):
            await stop()


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        port: int = typer.Option(8700, help="Port for Corral."),
        host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    ) -> None:
        """Serve Corral on SQLite with three runtimes (simulated) and a demo org."""
        settings = Settings(host=host, port=port)
        asyncio.run(run_demo(settings))
