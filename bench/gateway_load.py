"""The ``gateway`` scenario's load generator: its own process, pinned away from the proxy.

``python -m bench.gateway_load`` reads a JSON list of phases on stdin and prints a JSON list of
results, one per phase. A raw HTTP/1.1 client on uvloop (asyncio protocols, httptools to parse
replies: a few times cheaper per request than aiohttp, so the load generator is not what limits the
fastest proxy), one keep-alive connection per concurrent loop. Two kinds of phase:

* ``latency``: requests one at a time (c=1), alternating direct-to-upstream and through the proxy
  (their order swapped every iteration), warm-up first. Per request: the total time and, for a
  stream, the time to the first content chunk (the first non-empty ``content`` / ``text_delta``).
  The added latency is taken pair by pair (through the proxy minus direct, same iteration), so a
  hiccup of the shared core during one direct request is not subtracted from the proxy's p99.
* ``load``: ``concurrency`` loops for ``warmup`` + ``seconds`` seconds; only requests completed in
  the measured window count. The CPU (user + system, from ``/proc``) of each watched process tree
  (the proxy with all its children, the upstream) over exactly that window, and this process's own
  CPU share, which shows whether the load generator itself was the limit.

An error is any reply other than 200, any exception, and a stream that did not end properly
(``data: [DONE]``; Anthropic's ``message_stop``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

SYSTEM = "You are a concise assistant. Answer in one sentence."
USER = "In one sentence, what does an LLM gateway add in front of a model provider?"
CHAT = {"model": "gpt-4o-mini", "max_tokens": 64,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]}  # fmt: skip
MESSAGES = {"model": "claude-haiku-4-5", "max_tokens": 64, "system": SYSTEM,
            "messages": [{"role": "user", "content": USER}]}  # fmt: skip
FIRST = {
    "chat": re.compile(rb'"content"\s*:\s*"[^"]'),
    "messages": re.compile(rb'"type"\s*:\s*"text_delta"'),
}
END = {"chat": b"[DONE]", "messages": b"message_stop"}
TIMEOUT_S = 120.0
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


# -- process trees ---------------------------------------------------------------------------


def tree(root: int) -> list[int]:
    """``root`` and every process descended from it."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def core_ticks() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies of each CPU, from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *values = line.split()
            ticks = [int(v) for v in values]
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
            out[name[3:]] = (sum(ticks) - idle, sum(ticks))
    return out


def busy_since(before: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Each CPU's busy share since ``before`` (any process: shows other work on a core)."""
    now = core_ticks()
    return {
        cpu: round((b - before[cpu][0]) / max(t - before[cpu][1], 1), 3)
        for cpu, (b, t) in now.items()
        if cpu in before
    }


def rss_of(pids: list[int]) -> int:
    """Resident bytes of these processes together."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


# -- one request -----------------------------------------------------------------------------


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; httptools parses the replies (chunked ones too)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] | None = None
        self.status = 0
        self.body: list[bytes] = []
        self.search: re.Pattern[bytes] | None = None
        self.seen = b""
        self.first_at: float | None = None
        self.keep = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(ConnectionError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            if self.transport is not None:
                self.transport.close()

    def _fail(self, exc: BaseException) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(exc)

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep = self.parser.should_keep_alive()  # only right here, not once the body is in

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        if self.search is not None and self.first_at is None:
            self.seen += body
            if self.search.search(self.seen):
                self.first_at = time.perf_counter()

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def exchange(
        self, request: bytes, search: re.Pattern[bytes] | None
    ) -> tuple[int, bytes, float | None]:
        """Send one request; (status, body, when the first content arrived if searched)."""
        assert self.transport is not None
        self.status, self.body, self.search, self.seen, self.first_at = 0, [], search, b"", None
        self.keep = False
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        await self.done
        if not self.keep and self.transport is not None:
            self.transport.close()
            self.transport = None  # the next request opens a new connection
        return self.status, b"".join(self.body), self.first_at


class Client:
    """One connection of the pool (one per concurrent loop), reopened when it closes."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.conn: Connection | None = None

    async def exchange(
        self, request: bytes, search: re.Pattern[bytes] | None
    ) -> tuple[int, bytes, float | None]:
        if self.conn is None or self.conn.transport is None:
            loop = asyncio.get_running_loop()
            _, self.conn = await loop.create_connection(Connection, self.host, self.port)
        try:
            return await self.conn.exchange(request, search)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.close()
        self.conn = None


class Target:
    def __init__(self, spec: dict[str, Any], stream: bool) -> None:
        self.api: str = spec.get("api", "chat")
        self.stream = stream
        url = urlsplit(spec["url"])
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        key = spec.get("key") or "none"
        if self.api == "chat":
            path, auth = "/v1/chat/completions", f"authorization: Bearer {key}\r\n"
            body: dict[str, Any] = dict(CHAT)
            if stream:
                body |= {"stream": True, "stream_options": {"include_usage": True}}
        else:
            path = "/v1/messages"
            auth = f"x-api-key: {key}\r\nanthropic-version: 2023-06-01\r\n"
            body = dict(MESSAGES) | ({"stream": True} if stream else {})
        data = json.dumps(body).encode()
        head = (f"POST {url.path.rstrip('/')}{path} HTTP/1.1\r\nhost: {url.netloc}\r\n{auth}"
                f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n")  # fmt: skip
        self.request = head.encode() + data
        self.first = FIRST[self.api]
        self.end = END[self.api]

    def client(self) -> Client:
        return Client(self.host, self.port)

    async def call(
        self, client: Client, timed: bool = False
    ) -> tuple[bool, float, float | None, str | None]:
        """(ok, seconds, seconds to the first content chunk or None, error)."""
        start = time.perf_counter()
        search = self.first if timed and self.stream else None
        status, data, first_at = await client.exchange(self.request, search)
        elapsed = time.perf_counter() - start
        first = None if first_at is None else first_at - start
        if status != 200:
            return False, elapsed, first, f"HTTP {status}: {data[:200].decode(errors='replace')}"
        if self.stream and self.end not in data[-300:]:
            return False, elapsed, first, f"stream did not end: {data[-200:]!r}"
        if timed and self.stream and first is None:
            return False, elapsed, first, "stream without content"
        return True, elapsed, first, None


async def _guarded(
    target: Target, client: Client, timed: bool
) -> tuple[bool, float, float | None, str | None]:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(TIMEOUT_S):
            return await target.call(client, timed)
    except (OSError, TimeoutError, httptools.HttpParserError) as exc:
        client.close()
        return False, time.perf_counter() - start, None, f"{type(exc).__name__}: {exc}"


# -- phases ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks, as ``bench.harness.percentile``."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = int(rank), min(int(rank) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _summary(seconds: list[float]) -> dict[str, Any] | None:
    """Milliseconds: n, p50, p99, mean, max (None when there is nothing)."""
    if not seconds:
        return None
    ms = [s * 1e3 for s in seconds]
    return {"n": len(ms), "p50": round(percentile(ms, 50), 3), "p99": round(percentile(ms, 99), 3),
            "mean": round(sum(ms) / len(ms), 3), "max": round(max(ms), 3)}  # fmt: skip


async def latency(phase: dict[str, Any]) -> dict[str, Any]:
    stream = bool(phase.get("stream"))
    targets = {name: Target(phase[name], stream) for name in ("direct", "proxy") if phase.get(name)}
    clients = {name: target.client() for name, target in targets.items()}
    total: dict[str, list[float]] = {name: [] for name in targets}
    ttft: dict[str, list[float]] = {name: [] for name in targets}
    errors = dict.fromkeys(targets, 0)
    last_error: dict[str, str] = {}
    added: dict[str, list[float]] = {"total_ms": [], "ttft_ms": []}
    watch: dict[str, int] = phase.get("watch") or {}
    trees = {name: tree(pid) for name, pid in watch.items()}
    cpu0 = {name: cpu_of(pids) for name, pids in trees.items()}
    ticks0, started = core_ticks(), time.perf_counter()
    try:
        warmup, n = int(phase.get("warmup", 50)), int(phase.get("n", 300))
        for i in range(warmup + n):
            order = list(targets) if i % 2 == 0 else list(reversed(targets))
            got: dict[str, tuple[float, float | None]] = {}
            for name in order:
                ok, took, first, error = await _guarded(targets[name], clients[name], True)
                if i < warmup:
                    continue
                if not ok:
                    errors[name] += 1
                    last_error[name] = error or ""
                    continue
                total[name].append(took)
                got[name] = (took, first)
                if first is not None:
                    ttft[name].append(first)
            if "proxy" in got and "direct" in got:
                (p_total, p_first), (d_total, d_first) = got["proxy"], got["direct"]
                added["total_ms"].append(p_total - d_total)
                if p_first is not None and d_first is not None:
                    added["ttft_ms"].append(p_first - d_first)
    finally:
        for client in clients.values():
            client.close()
    wall = time.perf_counter() - started
    share = {name: round((cpu_of(pids) - cpu0[name]) / wall, 3) for name, pids in trees.items()}
    api = next(iter(targets.values())).api
    out: dict[str, Any] = {"kind": "latency", "stream": stream, "api": api,
                           "cpu_share": share, "core_busy": busy_since(ticks0)}  # fmt: skip
    if "proxy" in targets:
        out["added"] = {k: _summary(v) for k, v in added.items()}
    for name in targets:
        out[name] = {
            "total_ms": _summary(total[name]),
            "ttft_ms": _summary(ttft[name]) if stream else None,
            "errors": errors[name],
            "last_error": last_error.get(name),
        }
    return out


async def load(phase: dict[str, Any]) -> dict[str, Any]:
    stream = bool(phase.get("stream"))
    target = Target(phase["target"], stream)
    concurrency = int(phase["concurrency"])
    watch: dict[str, int] = phase.get("watch") or {}
    ok = errors = 0
    took: list[float] = []
    last_error: str | None = None
    measuring = stopping = False

    async def worker(client: Client) -> None:
        nonlocal ok, errors, last_error
        while not stopping:
            good, seconds, _, error = await _guarded(target, client, False)
            if not good:
                if measuring:
                    errors += 1
                    last_error = error
                await asyncio.sleep(0.01)  # no hot loop on a refusing proxy
            elif measuring:
                ok += 1
                took.append(seconds)

    clients = [target.client() for _ in range(concurrency)]
    workers = [asyncio.create_task(worker(client)) for client in clients]
    try:
        await asyncio.sleep(float(phase.get("warmup", 1.0)))
        trees = {name: tree(pid) for name, pid in watch.items()}
        cpu0 = {name: cpu_of(pids) for name, pids in trees.items()}
        ticks0 = core_ticks()
        own0, started = time.process_time(), time.perf_counter()
        measuring = True
        await asyncio.sleep(float(phase["seconds"]))
        measuring = False
        wall = time.perf_counter() - started
        own = time.process_time() - own0
        busy = busy_since(ticks0)
        cpu = {name: cpu_of(tree(pid)) - cpu0[name] for name, pid in watch.items()}
        stopping = True
        _, pending = await asyncio.wait(workers, timeout=float(phase.get("drain", 30.0)))
        for task in pending:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    finally:
        stopping = True
        for task in workers:
            task.cancel()
        for client in clients:
            client.close()
    done = ok
    return {
        "kind": "load",
        "stream": stream,
        "api": target.api,
        "concurrency": concurrency,
        "seconds": round(wall, 3),
        "ok": done,
        "errors": errors,
        "last_error": last_error,
        "per_s": round(done / wall, 1),
        "latency_ms": _summary(took),
        "cpu_s": {name: round(v, 3) for name, v in cpu.items()},
        "cpu_share": {name: round(v / wall, 3) for name, v in cpu.items()},
        "cpu_ms_per_request": {
            name: round(1e3 * v / done, 3) if done else None for name, v in cpu.items()
        },
        "loadgen_cpu_share": round(own / wall, 3),
        "core_busy": busy,
    }


async def run(phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for phase in phases:
        out.append(await (latency(phase) if phase["kind"] == "latency" else load(phase)))
    return out


def main() -> None:
    phases = json.loads(sys.stdin.read())
    try:
        import uvloop
    except ImportError:
        results = asyncio.run(run(phases))
    else:
        results = uvloop.run(run(phases))
    sys.stdout.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
