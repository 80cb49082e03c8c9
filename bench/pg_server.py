"""A PostgreSQL server of the benchmark's own, configured for sustained event load.

The live-session ladder measures how long an event takes from the runtime to the client, and
every event waits for its transaction's commit. On a PostgreSQL with default settings a timed
checkpoint every 5 minutes is followed by a burst of full-page images in the WAL, and on a
small VM's disk commits then stall for 80-435 ms (``bench.probes`` measures it): that stall,
not Corral, decided whether a level passed. ``docs/operations.md`` tells operators what to give
PostgreSQL for this load; this module starts a server configured that way (:data:`SETTINGS`),
in a temporary directory on the same disk as everything else, and removes it afterwards.
Durability is not traded: ``fsync``, ``synchronous_commit`` and ``full_page_writes`` stay on.

The same ladder also runs on the machine's shared PostgreSQL, defaults and all, so the report
shows both.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from corral.sim.processes import free_port

#: What differs from PostgreSQL's defaults (as ``docs/operations.md`` advises for live load).
SETTINGS = {
    "shared_buffers": "512MB",  # the working set of a bench run stays in memory
    "wal_compression": "lz4",  # full-page images after a checkpoint take a fraction of the WAL
    "checkpoint_timeout": "30min",  # timed checkpoints (and their bursts) 6x rarer
    "max_wal_size": "8GB",  # and not forced earlier by WAL volume
    "min_wal_size": "1GB",
    "wal_buffers": "16MB",
}

USER = "corral"
PASSWORD = "corral"


@dataclass
class PgServer:
    """A running server: the URL of its ``postgres`` database, for creating others."""

    admin_url: str
    settings: dict[str, str]
    _stop: list[str]
    _home: Path
    stopped: bool = False

    async def stop(self) -> None:
        """Stop at once, without a shutdown checkpoint (its data is thrown away): flushing
        hundreds of megabytes of dirty buffers would stall the disk for whatever runs next.
        Its databases are not dropped either, for the same reason."""
        if self.stopped:
            return
        self.stopped = True
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            await asyncio.to_thread(_run, self._stop, self._home)


def _bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    return Path(versions[-1]).parent if versions else None


def _version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def _as_owner(owner: str | None, argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as ``owner`` then."""
    return ["runuser", "-u", owner, "--", *argv] if owner else argv


def _run(argv: list[str], home: Path) -> None:
    with (home / "commands.log").open("ab") as out:
        subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=120)


async def _start(bindir: Path, owner: str | None, home: Path) -> PgServer:
    data, port = home / "data", free_port()
    pwfile = home / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if owner:
        shutil.chown(pwfile, owner)
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(pwfile)]
    await asyncio.to_thread(_run, _as_owner(owner, [*initdb, "--auth=scram-sha-256"]), home)
    conf = {
        **SETTINGS,
        "port": str(port),
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": f"'{home}'",
    }
    with (data / "postgresql.conf").open("a") as out:
        out.writelines(f"{name} = {value}\n" for name, value in conf.items())
    start = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(home / "server.log"), "-w"]
    await asyncio.to_thread(_run, _as_owner(owner, [*start, "start"]), home)
    url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/postgres"
    stop = [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
    return PgServer(url, SETTINGS, _as_owner(owner, stop), home)


@contextlib.asynccontextmanager
async def dedicated() -> AsyncIterator[PgServer | str]:
    """A fresh server on a free loopback port, or the reason there is none (a string)."""
    bindir = _bindir()
    if bindir is None:
        yield "no PostgreSQL server binaries (pg_ctl) on this machine"
        return
    owner: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            yield "running as root and there is no postgres user to run PostgreSQL as"
            return
        owner = "postgres"
    # Its own directory under the system's temporary one (same disk as the rest of the run),
    # which the server's user can reach whoever runs the benchmark.
    home = Path(tempfile.mkdtemp(prefix="corral-bench-pg-"))
    server: PgServer | str
    try:
        if owner:
            shutil.chown(home, owner)
        server = await _start(bindir, owner, home)
    except (OSError, subprocess.SubprocessError) as exc:
        server = f"could not start a dedicated PostgreSQL: {exc}; {_tail(home)}"
    try:
        yield server
    finally:
        if isinstance(server, PgServer):
            await server.stop()
        shutil.rmtree(home, ignore_errors=True)


def _tail(home: Path) -> str:
    try:
        return (home / "commands.log").read_text(errors="replace")[-800:]
    except OSError:
        return ""
