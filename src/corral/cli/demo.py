"""``corral demo``: Corral on SQLite with a simulated OpenCode, a demo org, and keys to try it.

Everything runs in one process: the mock LLM, the simulated OpenCode server, and Corral itself.
The data lives in ``./.corral``; a second run reuses it (the simulator gets a new port each time,
so the demo runtime's URL is updated on start). The demo keys are kept in ``.corral/*.key``
(0600) so the walkthrough can be repeated: that is a convenience of the demo only.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
import uvicorn

from corral.api.app import create_app
from corral.config import Settings
from corral.domain.errors import Conflict
from corral.domain.roles import Role
from corral.fleet.agents import AgentFields
from corral.services import Services, build
from corral.sim import mock_llm
from corral.sim._server import serve_in_loop
from corral.sim.opencode import SimConfig
from corral.sim.opencode import create_app as create_opencode_sim
from corral.vault.keyring import write_private

DEMO_TEAM = "demo"
DEMO_DEV_EMAIL = "dev@demo.local"
DEMO_RUNTIME = "opencode-sim"
DEMO_AGENT = "helper"


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


async def _ensure_demo(services: Services, admin_key: str, sim_url: str, settings: Settings) -> str:
    admin = await services.identity.authenticate(admin_key)
    teams = await services.identity.list_teams(admin, None, 200)
    team = next((t for t in teams.items if t.name == DEMO_TEAM), None)
    team = team or await services.identity.create_team(admin, DEMO_TEAM)
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
    runtimes = await services.runtimes.list_runtimes(admin, kind=None, cursor=None, limit=200)
    runtime = next((v.runtime for v in runtimes.items if v.runtime.name == DEMO_RUNTIME), None)
    if runtime is None:
        view = await services.runtimes.register(
            admin, name=DEMO_RUNTIME, kind="opencode", base_url=sim_url, config={}
        )
        runtime = view.runtime
    else:
        await services.runtimes.update(admin, runtime.id, name=None, base_url=sim_url, config=None)
    agents = await services.agents.list_agents(
        admin, team_id=team.id, runtime_id=None, name=DEMO_AGENT, cursor=None, limit=1
    )
    if not agents.items:
        fields = AgentFields(DEMO_AGENT, runtime.id, "mock/mock-model", "Be brief.", [], {})
        await services.agents.create(admin, team.id, fields)
    return dev_key_path.read_text().strip()


def _banner(url: str, admin_key: str, dev_key: str) -> str:
    return f"""
  Corral is running at {url}   (SQLite: ./.corral/corral.db, simulated OpenCode, demo org)

  Admin key:      {admin_key}
  Developer key:  {dev_key}

  Try it in another terminal:
    export CORRAL_URL={url}
    export CORRAL_API_KEY={dev_key}
    .venv/bin/corral sessions start --agent {DEMO_AGENT} "hello there"
    .venv/bin/corral sessions list
    curl -s -H "Authorization: Bearer $CORRAL_API_KEY" $CORRAL_URL/v1/sessions

  API docs: {url}/docs     Stop with Ctrl-C.
"""


async def run_demo(settings: Settings) -> None:
    llm_url, stop_llm = await serve_in_loop(mock_llm.create_app())
    sim_url, stop_sim = await serve_in_loop(create_opencode_sim(SimConfig(llm_url=llm_url)))
    services = await build(settings)
    try:
        admin_key = await _admin_key(services, settings)
        dev_key = await _ensure_demo(services, admin_key, sim_url, settings)
        app = create_app(services=services)
        config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning")
        server = uvicorn.Server(config)
        services.start()
        typer.echo(_banner(f"http://{settings.host}:{settings.port}", admin_key, dev_key))
        await server.serve()
    finally:
        await services.aclose()
        await stop_sim()
        await stop_llm()


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        port: int = typer.Option(8700, help="Port for Corral."),
        host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    ) -> None:
        """Serve Corral on SQLite with a simulated OpenCode runtime and a demo org."""
        settings = Settings(host=host, port=port)
        asyncio.run(run_demo(settings))
