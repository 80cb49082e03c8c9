"""Lease takeover after SIGKILL: how long a running turn is without a pumping replica.

Three ``corral serve`` replicas on one PostgreSQL database. Per round: a session is created with
a slow first turn (``[[slow:6]] ...``: the mock LLM streams the 22-character reply one character
every ~0.27 s) on a random replica that owns no running turn; once 1-8 ``message.delta`` events
(random) are stored, the turn's owner (``turns.owner``) is SIGKILLed. The benchmark then polls
``turns`` every 20 ms until another instance holds the lease. The killed replica is restarted
(same instance id) only after that, so that its own restart cannot be what reclaims the turn,
and the next round starts as soon as it answers ``/readyz``; the turn finishes in the
background. When every round is over, each turn's log is read: the ``ts`` of the first event
recorded after the kill, ``completed_at``, and the text deltas stored, compared with those the
runtime emitted (counted by a side subscriber on the simulator's bus).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from bench.cluster import Cluster, Replica, api_client, call
from bench.harness import Latency
from bench.streams import SimTap

POLL = 0.02
SLOW_SECONDS = 6
KILL_AFTER_MAX_DELTAS = 8  # the kill lands after 1-8 stored deltas (of 22)
WAIT_DELTAS = 15.0
WAIT_TAKEOVER = 30.0
WAIT_COMPLETION = 30.0


@dataclass
class Round:
    number: int
    session_id: str
    native_session_id: str
    turn_id: str
    replica: str
    killed_after_deltas: int
    killed_at: float
    lease_left_at_kill: float
    took_over_at: float | None = None
    new_owner: str | None = None
    takeover: float | None = None
    restart_seconds: float | None = None
    next_event: float | None = None
    completed: float | None = None
    turn_seconds: float | None = None
    status: str | None = None
    deltas_emitted: int = 0
    deltas_stored: int = 0
    deltas_emitted_after_takeover: int = 0
    deltas_stored_after_takeover: int = 0
    final_text_complete: bool | None = None
    errors: list[str] = field(default_factory=list)


def _stamp(value: Any) -> float | None:
    return value.timestamp() if value is not None else None


def _replica(cluster: Cluster, instance_id: str) -> Replica:
    for replica in cluster.replicas:
        if replica.instance_id == instance_id:
            return replica
    raise RuntimeError(f"turn owned by unknown instance {instance_id!r}")


async def _round(
    cluster: Cluster, db: asyncpg.Connection, number: int, rng: random.Random
) -> Round:
    assert cluster.user_key is not None and cluster.sims[0].agent_id is not None
    busy = {r["owner"] for r in await db.fetch("SELECT owner FROM turns WHERE status = 'running'")}
    idle = [r for r in cluster.alive() if r.instance_id not in busy]
    entry = rng.choice(idle or cluster.alive())
    kill_after = rng.randint(1, KILL_AFTER_MAX_DELTAS)
    text = f"[[slow:{SLOW_SECONDS}]] takeover round {number}"
    async with api_client(entry.url, cluster.user_key) as api:
        session = await call(
            api, "POST", "/v1/sessions", {"agent_id": cluster.sims[0].agent_id, "input": text}
        )
    sid = str(session["id"])
    turn_id = await db.fetchval(
        "SELECT id FROM turns WHERE session_id = $1 AND status = 'running'", sid
    )
    if turn_id is None:
        raise RuntimeError(f"session {sid}: no running turn after create")

    deadline = time.monotonic() + WAIT_DELTAS
    while True:
        stored = await db.fetchval(
            "SELECT count(*) FROM events WHERE session_id = $1 AND type = 'message.delta'", sid
        )
        if int(stored or 0) >= kill_after:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"session {sid}: fewer than {kill_after} deltas after 15 s")
        await asyncio.sleep(POLL)

    row = await db.fetchrow("SELECT owner, lease_expires_at FROM turns WHERE id = $1", turn_id)
    assert row is not None
    victim = _replica(cluster, str(row["owner"]))
    assert victim.child is not None
    killed_at = time.time()
    await cluster.sup.signal(victim.child, signal.SIGKILL)
    left = (_stamp(row["lease_expires_at"]) or killed_at) - killed_at
    result = Round(
        number, sid, str(session["native_session_id"]), str(turn_id), victim.instance_id,
        kill_after, killed_at, left,
    )  # fmt: skip

    deadline = time.monotonic() + WAIT_TAKEOVER
    while True:
        now = time.time()
        state = await db.fetchrow("SELECT owner, status FROM turns WHERE id = $1", turn_id)
        assert state is not None
        if state["owner"] not in (None, victim.instance_id):
            result.took_over_at, result.new_owner = now, str(state["owner"])
            result.takeover = now - killed_at
            break
        if state["status"] != "running":
            result.errors.append("the turn ended before another replica took its lease")
            break
        if time.monotonic() > deadline:
            result.errors.append("no other replica took the lease within 30 s")
            break
        await asyncio.sleep(POLL)
    result.restart_seconds = await cluster.start(victim)
    return result


async def _settle(db: asyncpg.Connection, tap: SimTap, rounds: list[Round]) -> None:
    """Wait for every turn to end, then read what each round's turn left in the log."""
    deadline = time.monotonic() + WAIT_COMPLETION
    ids = [r.turn_id for r in rounds]
    while await db.fetchval(
        "SELECT count(*) FROM turns WHERE id = ANY($1::text[]) AND status = 'running'", ids
    ):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)  # the runtime's last frames reach the tap
    emitted: dict[str, list[float]] = {}
    for arrived, frame in tap.chunks.frames():
        props = frame.get("properties") or {}
        if frame.get("type") == "message.part.delta":
            emitted.setdefault(str(props.get("sessionID")), []).append(arrived)
    for r in rounds:
        turn = await db.fetchrow(
            "SELECT status, started_at, completed_at FROM turns WHERE id = $1", r.turn_id
        )
        assert turn is not None
        r.status = str(turn["status"])
        completed, started = _stamp(turn["completed_at"]), _stamp(turn["started_at"])
        if r.status == "running" or completed is None:
            r.errors.append(f"turn still {r.status} {WAIT_COMPLETION:g} s after the last round")
        elif started is not None:
            r.completed = completed - r.killed_at
            r.turn_seconds = completed - started
        events = await db.fetch(
            "SELECT type, ts, data FROM events WHERE session_id = $1 ORDER BY seq", r.session_id
        )
        after_kill = [e["ts"].timestamp() for e in events if e["ts"].timestamp() > r.killed_at]
        r.next_event = min(after_kill) - r.killed_at if after_kill else None
        deltas = [e["ts"].timestamp() for e in events if e["type"] == "message.delta"]
        runtime = emitted.get(r.native_session_id, [])
        r.deltas_emitted, r.deltas_stored = len(runtime), len(deltas)
        if r.took_over_at is not None:
            r.deltas_emitted_after_takeover = sum(1 for t in runtime if t > r.took_over_at)
            r.deltas_stored_after_takeover = sum(1 for t in deltas if t > r.took_over_at)
        texts = [str(e["data"]) for e in events if e["type"] == "message.completed"]
        r.final_text_complete = any(f"takeover round {r.number}" in t for t in texts)


def _seconds(values: list[float]) -> dict[str, float]:
    lat = Latency.of(values)
    return {"n": lat.n, "p50": round(lat.p50 / 1000, 3), "p99": round(lat.p99 / 1000, 3),
            "max": round(lat.max / 1000, 3)}  # fmt: skip


async def measure(
    cluster: Cluster, dsn: str, rounds: int, settings: dict[str, str]
) -> dict[str, Any]:
    rng = random.Random(7)
    db = await asyncpg.connect(dsn, timeout=10)
    tap_client = httpx.AsyncClient(base_url=cluster.sims[0].url, timeout=httpx.Timeout(None))
    tap = SimTap(tap_client)
    tap.start()
    done: list[Round] = []
    try:
        await asyncio.wait_for(tap.chunks.connected.wait(), 10)
        for number in range(rounds):
            done.append(await _round(cluster, db, number, rng))
        await _settle(db, tap, done)
    finally:
        await tap.close()
        await tap_client.aclose()
        await db.close()

    def pick(name: str) -> list[float]:
        return [v for r in done if (v := getattr(r, name)) is not None]

    return {
        "rounds": len(done),
        "replicas": len(cluster.replicas),
        "settings": settings,
        "slow_turn_seconds": SLOW_SECONDS,
        "takeover_s": _seconds(pick("takeover")),
        "next_event_s": _seconds(pick("next_event")),
        "completed_after_kill_s": _seconds(pick("completed")),
        "turn_duration_s": _seconds(pick("turn_seconds")),
        "lease_left_at_kill_s": _seconds(pick("lease_left_at_kill")),
        # the rest once the remaining lease is subtracted: the other replicas' check
        # interval, the claim, and this benchmark's 20 ms polling
        "takeover_after_expiry_s": _seconds(
            [r.takeover - r.lease_left_at_kill for r in done if r.takeover is not None]
        ),
        "restart_s": _seconds(pick("restart_seconds")),
        "statuses": [r.status for r in done],
        "deltas": {
            "emitted": sum(r.deltas_emitted for r in done),
            "stored": sum(r.deltas_stored for r in done),
            "emitted_after_takeover": sum(r.deltas_emitted_after_takeover for r in done),
            "stored_after_takeover": sum(r.deltas_stored_after_takeover for r in done),
            "turns_with_complete_final_text": sum(1 for r in done if r.final_text_complete),
        },
        "errors": [e for r in done for e in r.errors],
        "per_round": [
            {
                k: round(v, 3) if isinstance(v, float) else v
                for k, v in vars(r).items()
                if k not in ("killed_at", "took_over_at", "native_session_id")
            }
            for r in done
        ],
    }
