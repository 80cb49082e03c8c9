"""Child processes of a benchmark run, and how much CPU each of them used.

Every child runs in its own process group (``start_new_session``) so one signal reaches all of
it, and on Linux it is told to die with the benchmark (``PR_SET_PDEATHSIG``) even if the
benchmark itself is killed. :class:`Supervisor` is an async context manager whose exit stops
every group it started (SIGTERM, then SIGKILL), whatever happened inside.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from corral.sim.processes import die_with_parent, free_port

__all__ = ["Child", "Supervisor", "free_port", "wait_http"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Supervisor:
    """Starts children and guarantees they are gone when the ``async with`` block ends."""

    logdir: Path
    children: list[Child] = field(default_factory=list)

    async def __aenter__(self) -> Supervisor:
        self.logdir.mkdir(parents=True, exist_ok=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.shield(asyncio.to_thread(self.stop_all))

    def spawn(
        self, name: str, argv: list[str], *, env: Mapping[str, str] | None = None, cwd: Path
    ) -> Child:
        starts = sum(c.name == name for c in self.children)
        log = self.logdir / f"{name}.{starts}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                preexec_fn=die_with_parent,  # only prctl: nothing that could deadlock after fork
            )
        child = Child(name, popen, log)
        self.children.append(child)
        return child

    async def signal(self, child: Child, sig: signal.Signals, *, wait: float = 10.0) -> None:
        """Send ``sig`` to the child's process group and wait (up to ``wait`` s) for its exit."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, sig)
        deadline = time.monotonic() + wait
        while child.alive():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} (pid {child.pid}) outlived {sig.name}")
            await asyncio.sleep(0.005)

    async def stop(self, child: Child, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it is still there after ``grace`` seconds."""
        try:
            await self.signal(child, signal.SIGTERM, wait=grace)
        except RuntimeError:
            await self.signal(child, signal.SIGKILL)
        self._reap_group(child)

    def _reap_group(self, child: Child) -> None:
        # Anything the child left behind in its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        """Blocking: every group gets SIGTERM, then SIGKILL after 3 s at most."""
        for child in self.children:
            if child.alive():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(max(0.0, deadline - time.monotonic()))
        for child in self.children:
            self._reap_group(child)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(5)


async def wait_http(url: str, child: Child, timeout: float = 60.0) -> None:
    """Until ``GET url`` answers 200; fails at once, with the log, if the child exited."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            if not child.alive():
                raise RuntimeError(
                    f"{child.name} exited ({child.popen.returncode}):\n{child.tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} not ready after {timeout:.0f} s:\n{child.tail()}")
            await asyncio.sleep(0.05)


# -- CPU accounting --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds a process has used so far (None once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS


def pids_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (entry / "comm").read_text().strip() == name:
                pids.append(int(entry.name))
    return pids


def _machine_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs together, from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


class CpuMeter:
    """CPU used by named groups of processes between :meth:`start` and :meth:`stop`.

    Shares are in percent of one core (two saturated cores read 200%). PostgreSQL backends come
    and go, so its group is every process called ``postgres`` at start or stop (all databases,
    other clients of the server included).
    """

    def __init__(self, groups: Mapping[str, Iterable[int]], *, postgres: bool = True) -> None:
        self._groups = {name: list(pids) for name, pids in groups.items()}
        self._postgres = postgres
        self._before: dict[str, dict[int, float]] = {}
        self._machine: tuple[int, int] | None = None
        self._started = 0.0

    def _sample(self) -> dict[str, dict[int, float]]:
        groups = dict(self._groups)
        if self._postgres:
            groups["postgres"] = pids_named("postgres")
        out: dict[str, dict[int, float]] = {}
        for name, pids in groups.items():
            out[name] = {}
            for pid in pids:
                used = cpu_seconds(pid)
                if used is not None:
                    out[name][pid] = used
        return out

    def start(self) -> None:
        self._before = self._sample()
        self._machine = _machine_ticks()
        self._started = time.monotonic()

    def stop(self) -> dict[str, Any]:
        after = self._sample()
        machine = _machine_ticks()
        wall = max(time.monotonic() - self._started, 1e-6)
        shares: dict[str, float] = {}
        for name, now in after.items():
            before = self._before.get(name, {})
            used = sum(v - before.get(pid, 0.0) for pid, v in now.items())
            shares[name] = round(100.0 * used / wall, 1)
        result: dict[str, Any] = {"percent_of_one_core": shares, "seconds": round(wall, 2)}
        if machine is not None and self._machine is not None:
            busy = machine[0] - self._machine[0]
            total = max(machine[1] - self._machine[1], 1)
            result["machine_busy_percent"] = round(100.0 * busy / total, 1)
        return result
