"""Operator commands that run on the server itself: ``serve``, ``db``, ``vault``.

Unlike the rest of the CLI these use Corral's own packages directly, not the HTTP API. Those
packages are imported inside the commands: they cost about a second to import, which every
client command would otherwise pay.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import typer

from corral.cli import output
from corral.cli.client import CliError
from corral.cli.output import JsonOpt

if TYPE_CHECKING:
    from corral.config import Settings
    from corral.services import Services

db_app = typer.Typer(no_args_is_help=True)
vault_app = typer.Typer(no_args_is_help=True)


def _settings(**overrides: Any) -> Settings:
    from pydantic import ValidationError

    from corral.config import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise CliError("bad_settings", f"invalid CORRAL_* settings: {exc}") from None


def _where(database_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(database_url).render_as_string(hide_password=True)


# -- serve ---------------------------------------------------------------------------------------


def _run_fast(main: Any) -> None:
    """Run on uvloop when it is installed (it is with uvicorn[standard]), as uvicorn would."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def _draining_server_class() -> type[Any]:
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """On SIGTERM/SIGINT, drain Corral first so open streams end and free the shutdown."""

        def __init__(self, config: uvicorn.Config, services: Services) -> None:
            super().__init__(config)
            self._services = services

        def handle_exit(self, sig: int, frame: Any) -> None:
            self._services.drain()
            super().handle_exit(sig, frame)

    return DrainingServer


def _DrainingServer(config: Any, services: Services) -> Any:
    return _draining_server_class()(config, services)


async def _build(settings: Settings) -> Services:
    from corral import services as services_module

    try:
        return await services_module.build(settings)
    except Exception as exc:  # database down, bad key file...: one clear line, not a traceback
        raise CliError("startup_failed", f"cannot start Corral: {exc}") from None


async def _serve(settings: Settings) -> None:
    import uvicorn

    from corral.api.app import create_app
    from corral.gc_policy import tune_for_serving
    from corral.telemetry import logs

    logs.configure(settings.log_format, settings.log_level)
    services = await _build(settings)
    try:
        url = f"http://{settings.host}:{settings.port}"
        boot = services.bootstrap
        if boot is not None and boot.key is not None:
            # Printed before binding the port: if that fails, the only copy is not lost.
            output.done(f"Created organization {boot.org.name!r}; admin: {boot.admin.email}")
            output.done(f"Admin API key: {boot.key.plaintext}")
            output.warn("This key is shown only once: store it now (e.g. in CORRAL_API_KEY).")
        # Services are built here rather than by the app's lifespan so the bootstrap key can be
        # shown; the app then shares them and leaves their shutdown to us.
        app = create_app(services=services)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            log_config=None,  # uvicorn's loggers too go through Corral's (redacting) handler
            timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_seconds)),
        )
        server = _DrainingServer(config, services)
        task = asyncio.create_task(server.serve())
        # uvicorn reports readiness only as a flag, so poll it.
        while not server.started and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if server.started:
            output.done(f"Corral is serving at {url}  (database {_where(settings.database_url)})")
            services.start()
            tune_for_serving(asyncio.get_running_loop())
        await task
    finally:
        await services.aclose()


def serve(
    host: str | None = typer.Option(None, "--host", help="Interface (default CORRAL_HOST)."),
    port: int | None = typer.Option(None, "--port", help="Port (default CORRAL_PORT, 8700)."),
) -> None:
    """Run the Corral server (settings from CORRAL_* environment variables)."""
    settings = _settings(host=host, port=port)
    try:
        _run_fast(_serve(settings))
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown
        output.note("stopped")


# -- db --------------------------------------------------------------------------------------------


async def _revisions(upgrade: bool) -> dict[str, Any]:
    from corral.store import migrate
    from corral.store.db import Database

    settings = _settings()
    db = Database(settings.database_url)
    try:
        before = await migrate.current_revision(db)
        if upgrade:
            await migrate.upgrade(db)
        current = await migrate.current_revision(db)
    except Exception as exc:  # unreachable database, bad URL: say so plainly
        raise CliError("database_error", f"{_where(settings.database_url)}: {exc}") from None
    finally:
        await db.dispose()
    head = migrate.head_revision()
    return {
        "database": _where(settings.database_url),
        "previous": before,
        "current": current,
        "head": head,
        "up_to_date": current == head,
    }


@db_app.command("migrate")
def db_migrate(ctx: typer.Context, json_: bool = JsonOpt) -> None:
    """Upgrade the database schema to the latest revision."""
    state = output.use(ctx, json_)
    result = asyncio.run(_revisions(upgrade=True))
    if state.json:
        output.emit_json(result)
    elif result["previous"] == result["current"]:
        output.done(f"{result['database']}: already at {result['current']} (head)")
    else:
        before = result["previous"] or "empty"
        output.done(f"{result['database']}: migrated {before} → {result['current']} (head)")


@db_app.command("current")
def db_current(ctx: typer.Context, json_: bool = JsonOpt) -> None:
    """Show the database's schema revision and whether it is the latest."""
    state = output.use(ctx, json_)
    result = asyncio.run(_revisions(upgrade=False))
    result.pop("previous")
    if state.json:
        output.emit_json(result)
        return
    status = "up to date" if result["up_to_date"] else "behind: run `corral db migrate`"
    output.details(
        [
            ("database", result["database"]),
            ("current", result["current"] or "empty"),
            ("head", result["head"]),
            ("status", status),
        ]
    )


async def _copy(source_url: str, target_url: str) -> dict[str, Any]:
    from corral.domain.errors import CorralError
    from corral.store.copy import copy_database
    from corral.store.db import Database

    source, target = Database(source_url), Database(target_url)
    try:
        counts = await copy_database(source, target)
    except CorralError as exc:
        raise CliError(exc.code, exc.detail) from None
    except Exception as exc:
        raise CliError("database_error", f"copy failed: {exc}") from None
    finally:
        await source.dispose()
        await target.dispose()
    return {"from": _where(source_url), "to": _where(target_url), "rows": counts}


@db_app.command("copy")
def db_copy(
    ctx: typer.Context,
    to: str = typer.Option(..., "--to", help="Target database URL, e.g. postgresql://u:p@host/db."),
    source: str | None = typer.Option(
        None, "--from", help="Source database URL (default: CORRAL_DATABASE_URL)."
    ),
    json_: bool = JsonOpt,
) -> None:
    """Copy every row into a fresh database (e.g. SQLite to PostgreSQL). Stop Corral first."""
    state = output.use(ctx, json_)
    result = asyncio.run(_copy(source or _settings().database_url, to))
    if state.json:
        output.emit_json(result)
        return
    total = sum(result["rows"].values())
    output.done(f"copied {total} rows from {result['from']} to {result['to']}")
    output.details([(name, str(n)) for name, n in result["rows"].items()])


# -- vault -----------------------------------------------------------------------------------------


async def _rotate() -> dict[str, Any]:
    from corral.services import load_keyring
    from corral.store.db import Database
    from corral.vault.keyring import KeyringError
    from corral.vault.service import rotate_master_key

    settings = _settings()
    if settings.master_key:
        raise CliError(
            "master_key_from_env",
            "the master key comes from CORRAL_MASTER_KEY, which this command cannot rewrite; "
            "use a key file (CORRAL_KEY_FILE) to rotate with Corral",
        )
    if not settings.key_file.exists():
        raise CliError("no_keyring", f"no key file at {settings.key_file} (see CORRAL_KEY_FILE)")
    db = Database(settings.database_url)
    try:
        keyring = load_keyring(settings)
        rotated, count = await rotate_master_key(db, keyring)
    except KeyringError as exc:
        raise CliError("keyring_error", str(exc)) from None
    finally:
        await db.dispose()
    return {
        "previous_version": keyring.active,
        "active_version": rotated.active,
        "rewrapped_secrets": count,
        "key_file": str(settings.key_file),
    }


@vault_app.command("rotate-master-key")
def rotate_master_key(ctx: typer.Context, json_: bool = JsonOpt) -> None:
    """Add a new master key version and re-wrap every stored secret under it."""
    state = output.use(ctx, json_)
    result = asyncio.run(_rotate())
    if state.json:
        output.emit_json(result)
        return
    output.done(
        f"Master key rotated: version {result['previous_version']} → "
        f"{result['active_version']}; re-wrapped {result['rewrapped_secrets']} secret(s) "
        f"({result['key_file']})"
    )
    output.note("Older versions stay in the key file; running servers pick up the new one.")


def register(app: typer.Typer) -> None:
    """Add the operator commands to the ``corral`` app."""
    panel = "Server-side (operators)"
    app.command("serve", rich_help_panel=panel)(serve)
    app.add_typer(db_app, name="db", help="Database schema.", rich_help_panel=panel)
    app.add_typer(vault_app, name="vault", help="Credential vault.", rich_help_panel=panel)
