"""Kill rounds: put sessions mid-turn, SIGKILL Corral at a randomized point, restart, check.

One round is one kill. A *primary* session decides when the kill lands (its scenario kind);
a few *extra* sessions are in flight beside it wherever they happen to be. After the restart the
test answers approvals and retries cut requests like a client would, waits for every session to
settle, then checks each one (:mod:`tests.crash.invariants`) against the runtime's own record.
Sessions are reused for a few turns, so recovery also meets sessions with earlier turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from tests.crash.harness import Api, ApiError, Cluster, RuntimeView, StreamReader
from tests.crash.invariants import ClientInput, Finding, Observed, check, story

SETTLE_SECONDS = 20.0  # every session of a round is idle or failed by then
STUCK_SECONDS = 8.0  # Corral still busy this long after the runtime went idle: stuck
UNKNOWN_APPROVAL_SECONDS = 5.0  # runtime asks, Corral shows no pending approval this long
TRIGGER_SECONDS = 15.0  # a kill point that never comes (a stuck scenario) kills anyway
QUIET_SECONDS = 0.6  # a settled session's log must stop growing for this long
TURNS_PER_SESSION = 3
DOUBLE_KILL_CHANCE = 0.15  # a second SIGKILL while the first recovery runs
EARLY_APPROVAL_KILL_CHANCE = 0.3  # approval scenario: kill as soon as the input is accepted
REPEAT_TEXT_CHANCE = 0.3  # before-delivery on a reused session: send the previous text again
DUMP_ALL = os.environ.get("CORRAL_CRASH_DUMP") == "all"  # else only sessions with findings


class Kind(StrEnum):
    MID_STREAM = "mid-stream"
    BEFORE_DELIVERY = "before-delivery"
    APPROVAL = "approval"
    CANCEL = "cancel"
    QUICK = "quick"  # extras only: a short reply, usually over before the kill


PRIMARY_KINDS = (Kind.MID_STREAM, Kind.BEFORE_DELIVERY, Kind.APPROVAL, Kind.CANCEL)
EXTRA_KINDS = (Kind.MID_STREAM, Kind.BEFORE_DELIVERY, Kind.APPROVAL, Kind.QUICK)


@dataclass
class Failure:
    backend: str
    seed: int
    round: int
    scenario: str
    session_id: str
    invariant: str
    detail: str


@dataclass
class Tracked:
    """A session across rounds: everything the client did and saw."""

    id: str
    native_id: str
    runtime: str
    inputs: list[ClientInput] = field(default_factory=list)
    seen: dict[int, dict[str, Any]] = field(default_factory=dict)
    turns: int = 0
    reported: set[Finding] = field(default_factory=set)


@dataclass(frozen=True)
class Plan:
    """Every random choice of one session's part in a round, drawn before anything runs.

    Drawing them up front keeps a seed's kill points the same whatever order tasks run in.
    """

    offset: float  # extras: seconds before sending; primary: after the extras are under way
    want: int  # deltas to see before the kill (mid-stream) or before cancelling (cancel)
    wait: float  # seconds from the trigger event to the kill
    early: bool  # approval: kill as soon as the input is accepted
    repeat: bool  # before-delivery: send the session's previous text again
    retry: bool  # after the restart, send a cut message again with the same key


@dataclass
class Slot:
    """One session's part in a round."""

    tracked: Tracked
    kind: Kind
    primary: bool
    start_seq: int
    plan: Plan
    sent: list[ClientInput] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    reader: StreamReader | None = None
    resumed: StreamReader | None = None
    stuck: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class RoundResult:
    failures: list[Failure]
    line: str


def _words(tag: str, n: int) -> str:
    return " ".join(f"{tag}w{i:02d}" for i in range(n))


class CrashRun:
    """Rounds of kill-and-recover against one Corral database."""

    def __init__(
        self,
        cluster: Cluster,
        key: str,
        agents: dict[str, str],
        *,
        backend: str,
        seed: int,
    ) -> None:
        self.cluster = cluster
        self.key = key
        self.agents = agents
        self.backend = backend
        self.seed = seed
        self.rng = random.Random(f"{seed}:{backend}")
        self.pool: dict[str, list[Tracked]] = {name: [] for name in agents}
        self.sessions: list[Tracked] = []
        self.views = {name: RuntimeView(sim) for name, sim in cluster.runtimes.items()}
        self._order: list[Kind] = []
        self.coverage: Counter[str] = Counter()  # what the kills actually hit, for the summary
        self.api = Api(cluster.url, key)

    async def aclose(self) -> None:
        await self.api.aclose()
        for view in self.views.values():
            await view.aclose()

    # -- sessions ------------------------------------------------------------------------------

    async def _session_on(self, runtime: str) -> Tracked:
        free = self.pool[runtime]
        if free:
            return free.pop(self.rng.randrange(len(free)))
        body = {"agent_id": self.agents[runtime], "title": f"crash {len(self.sessions)}"}
        created = await self.api.call("POST", "/v1/sessions", body)
        tracked = Tracked(created["id"], created["native_session_id"], runtime)
        self.sessions.append(tracked)
        return tracked

    def _runtime_for(self, kind: Kind) -> str:
        if kind is Kind.BEFORE_DELIVERY:
            return self.rng.choice(("ack-late", "accept-late"))
        return "fast"

    async def _send(self, slot: Slot, text: str) -> ClientInput:
        sent = ClientInput(text, uuid.uuid4().hex)
        slot.tracked.inputs.append(sent)
        slot.sent.append(sent)
        slot.tracked.turns += 1
        with contextlib.suppress(httpx.HTTPError):
            response = await self.api.http.post(
                f"/v1/sessions/{slot.tracked.id}/messages",
                json={"text": text},
                headers={"Idempotency-Key": sent.idempotency_key},
            )
            sent.status = response.status_code
            if response.status_code == 202:
                sent.turn_id = response.json()["turn_id"]
            else:
                slot.notes.append(f"send {response.status_code}: {response.text[:120]}")
        return sent

    # -- one round -----------------------------------------------------------------------------

    def _next_primary(self) -> Kind:
        if not self._order:
            self._order = self.rng.sample(PRIMARY_KINDS, len(PRIMARY_KINDS))
        return self._order.pop()

    async def round(self, number: int, total: int) -> RoundResult:
        began = time.monotonic()
        primary = self._next_primary()
        kinds = [primary, *(self.rng.choice(EXTRA_KINDS) for _ in range(self.rng.randint(1, 3)))]
        slots: list[Slot] = []
        for index, kind in enumerate(kinds):
            tracked = await self._session_on(self._runtime_for(kind))
            start = int((await self.api.session(tracked.id))["last_seq"])
            slots.append(Slot(tracked, kind, index == 0, start, self._plan(kind, index == 0)))
        again = self.rng.random() < DOUBLE_KILL_CHANCE
        self.coverage[f"{primary.value}@{slots[0].tracked.runtime}"] += 1
        self.coverage["extra sessions in flight"] += len(slots) - 1
        self.coverage["double kills"] += again
        again_after = self.rng.uniform(0.0, 0.5)
        for slot in slots:
            slot.reader = StreamReader(
                self.cluster.url, self.key, slot.tracked.id, slot.start_seq
            ).start()

        # Extras get under way first, then the primary runs its scenario up to the kill point.
        trigger = asyncio.Event()
        tag = f"r{number}"
        under_way = [asyncio.Event() for _ in slots[1:]]
        drivers = [
            asyncio.create_task(self._drive(slot, f"{tag}s{i + 1}", trigger, sent))
            for i, (slot, sent) in enumerate(zip(slots[1:], under_way, strict=True))
        ]
        drivers.append(asyncio.create_task(self._primary(slots[0], f"{tag}s0", trigger, under_way)))
        try:
            await asyncio.wait_for(trigger.wait(), TRIGGER_SECONDS)
        except TimeoutError:
            slots[0].notes.append(f"kill point never came; killed after {TRIGGER_SECONDS}s")
        armed = time.monotonic() - began
        await self.cluster.kill_corral()
        for task in drivers:
            task.cancel()
        for task in drivers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

        restart = await self._restart(slots)
        if again:  # die again while recovering, before the first recovery could finish
            await asyncio.sleep(again_after)
            await self.cluster.kill_corral()
            restart += await self._restart(slots)
        await self._after_restart(slots)
        settle_began = time.monotonic()
        await asyncio.gather(*(self._settle(slot) for slot in slots))
        settle = time.monotonic() - settle_began

        failures, events_total = await self._check_all(number, slots)
        extras = ", ".join(s.kind.value for s in slots[1:])
        invariants = ", ".join(sorted({f.invariant for f in failures}))
        status = f"FAIL {len(failures)}: {invariants}" if failures else "ok"
        line = (
            f"[{self.backend}] kill {number}/{total}{'x2' if again else '  '} "
            f"{primary.value:<15} +[{extras}] "
            f"armed {armed:4.1f}s restart {restart:3.1f}s settle {settle:4.1f}s "
            f"events {events_total:4d}  {status}"
        )
        notes = [f"{s.tracked.id}: {n}" for s in slots for n in s.notes]
        if notes:
            line += "\n    " + "\n    ".join(notes)
        return RoundResult(failures, line)

    async def _check_all(self, number: int, slots: list[Slot]) -> tuple[list[Failure], int]:
        """Check every session of the round; report each defect once per session."""
        failures: list[Failure] = []
        events_total = 0
        for slot in slots:
            found, n_events = await self._check(number, slot)
            events_total += n_events
            scenario = f"{slot.kind.value}@{slot.tracked.runtime}"
            if not slot.primary:
                scenario += " (extra)"
            for finding in found:
                if finding in slot.tracked.reported:
                    continue
                slot.tracked.reported.add(finding)
                failures.append(
                    Failure(self.backend, self.seed, number, scenario, slot.tracked.id,
                            finding.invariant, finding.detail)
                )  # fmt: skip
            self._release(slot, bool(found))
        return failures, events_total

    async def _restart(self, slots: list[Slot]) -> float:
        """Start Corral again; every client reconnects its stream from the last seq it saw."""
        for slot in slots:
            for reader in (slot.reader, slot.resumed):
                if reader is not None:
                    await reader.close()
                    for frame in reader.frames:
                        slot.tracked.seen[int(frame["seq"])] = frame
        await self.api.aclose()
        took = await self.cluster.start_corral()
        self.api = Api(self.cluster.url, self.key)
        for slot in slots:
            last = slot.resumed or slot.reader
            assert last is not None
            slot.resumed = StreamReader(
                self.cluster.url, self.key, slot.tracked.id, last.last_seq
            ).start()
        return took

    def _release(self, slot: Slot, failed: bool) -> None:
        """Back to the pool for another turn, unless it is used up or something went wrong."""
        tracked = slot.tracked
        if failed or slot.stuck or tracked.turns >= TURNS_PER_SESSION:
            return
        if tracked not in self.pool[tracked.runtime]:
            self.pool[tracked.runtime].append(tracked)

    # -- drivers: what the client does until the kill --------------------------------------------

    def _plan(self, kind: Kind, primary: bool) -> Plan:
        rng = self.rng
        delay = self.cluster.runtimes["ack-late"].prompt_delay
        if kind is Kind.MID_STREAM:
            want, wait = rng.randint(0, 14), 0.0
        elif kind is Kind.BEFORE_DELIVERY:  # the kill lands while the runtime has not answered
            want, wait = 0, rng.uniform(0.02, delay * 0.95)
        elif kind is Kind.CANCEL:
            want, wait = rng.randint(0, 8), rng.uniform(0.0, 0.25)
        else:
            want, wait = 0, rng.uniform(0.0, 0.3)
        return Plan(
            offset=rng.uniform(0.0, 0.6) if primary else rng.uniform(0.0, 0.3),
            want=want,
            wait=wait,
            early=rng.random() < EARLY_APPROVAL_KILL_CHANCE,
            repeat=rng.random() < REPEAT_TEXT_CHANCE,
            retry=rng.random() < 0.5,
        )

    async def _primary(
        self, slot: Slot, tag: str, trigger: asyncio.Event, under_way: list[asyncio.Event]
    ) -> None:
        """The extras first (so they are in flight at the kill), then the scenario that kills."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in under_way)), 3.0)
        await asyncio.sleep(slot.plan.offset)
        await self._drive(slot, tag, trigger, asyncio.Event())

    async def _drive(
        self, slot: Slot, tag: str, trigger: asyncio.Event, sending: asyncio.Event
    ) -> None:
        plan = slot.plan
        if not slot.primary:
            await asyncio.sleep(plan.offset)
        sending.set()
        reader = slot.reader
        assert reader is not None
        kind = slot.kind
        if kind is Kind.MID_STREAM:
            await self._send(slot, f"{tag} {_words(tag, 24)} [[slow:2]]")
            if slot.primary:
                await reader.wait_for(lambda f: _count(f, "message.delta") >= plan.want, 10.0)
                trigger.set()
        elif kind is Kind.BEFORE_DELIVERY:
            text = f"{tag} {_words(tag, 12)} [[slow:1]]"
            if slot.tracked.inputs and plan.repeat:
                text = slot.tracked.inputs[-1].text  # the same words again, like "yes" twice
                slot.notes.append("repeats the previous input's text")
                self.coverage["repeated texts"] += 1
            send = asyncio.create_task(self._send(slot, text))
            if slot.primary:
                await asyncio.sleep(plan.wait)
                trigger.set()
            await send
        elif kind is Kind.APPROVAL:
            command = {"command": f"echo {tag}", "description": "d"}
            await self._send(slot, f"{tag} run it [[tool:bash {_json(command)}]]")
            if slot.primary and plan.early:
                slot.notes.append("killed before the approval was asked")
                self.coverage["kills before the approval was asked"] += 1
                trigger.set()  # the runtime asks while Corral is down (or starting)
            elif slot.primary:
                await reader.wait_for(lambda f: _count(f, "approval.requested") >= 1, 10.0)
                await asyncio.sleep(plan.wait)
                trigger.set()
        elif kind is Kind.CANCEL:
            await self._send(slot, f"{tag} {_words(tag, 30)} [[slow:3]]")
            await reader.wait_for(lambda f: _count(f, "message.delta") >= plan.want, 10.0)
            cancel = asyncio.create_task(self._cancel(slot))
            await asyncio.sleep(plan.wait)
            trigger.set()
            await cancel
        else:
            await self._send(slot, f"{tag} {_words(tag, 4)}")

    async def _cancel(self, slot: Slot) -> None:
        index = len(slot.notes)
        slot.notes.append("cancel cut by the kill")
        with contextlib.suppress(httpx.HTTPError):
            response = await self.api.http.post(f"/v1/sessions/{slot.tracked.id}/cancel")
            state = response.json().get("state") if response.status_code == 200 else None
            slot.notes[index] = (
                f"cancel answered {response.status_code} {state or response.text[:80]}"
            )

    # -- after the restart -----------------------------------------------------------------------

    async def _after_restart(self, slots: list[Slot]) -> None:
        """A client whose message request was cut sends it again with the same key (sometimes)."""
        for slot in slots:
            if slot.kind is not Kind.BEFORE_DELIVERY or not slot.plan.retry:
                continue
            for sent in slot.sent:
                if sent.status is not None:
                    continue
                with contextlib.suppress(httpx.HTTPError):
                    response = await self.api.http.post(
                        f"/v1/sessions/{slot.tracked.id}/messages",
                        json={"text": sent.text},
                        headers={"Idempotency-Key": sent.idempotency_key},
                    )
                    sent.retry_status = response.status_code
                    if response.status_code == 202:
                        sent.retry_turn_id = response.json()["turn_id"]
                    slot.notes.append(f"retried cut send: {response.status_code}")
                    self.coverage["cut sends retried with their Idempotency-Key"] += 1

    async def _settle(self, slot: Slot) -> None:
        """Answer approvals until the session and its runtime are both done, or give up."""
        view = self.views[slot.tracked.runtime]
        native = slot.tracked.native_id
        deadline = time.monotonic() + SETTLE_SECONDS
        runtime_idle_since: float | None = None
        unknown_since: float | None = None
        quiet: tuple[int, float] | None = None
        while True:
            now = time.monotonic()
            try:
                session = await self.api.session(slot.tracked.id)
                pending = await self.api.pending_approvals(slot.tracked.id)
            except (httpx.HTTPError, ApiError) as exc:
                slot.note(f"Corral API error while settling: {exc}")
                session, pending = None, []
            busy = await view.busy(native)
            asks = await view.permissions(native) if busy else []
            for approval in pending:
                await self._answer(slot, approval["id"])
            if asks and not pending:
                unknown_since = unknown_since or now
                if now - unknown_since > UNKNOWN_APPROVAL_SECONDS:
                    ids = [a["id"] for a in asks]
                    slot.stuck = (
                        f"runtime waits on permission {ids} that Corral shows no pending "
                        f"approval for (session {session and session['state']})"
                    )
                    await view.abort(native)
                    return
            else:
                unknown_since = None
            settled = session is not None and session["state"] in ("created", "idle", "failed")
            runtime_idle_since = None if busy else (runtime_idle_since or now)
            if settled and not busy:
                seq = int(session["last_seq"]) if session else 0
                if quiet is None or quiet[0] != seq:
                    quiet = (seq, now)
                elif now - quiet[1] >= QUIET_SECONDS:
                    return
            else:
                quiet = None
            if session is not None and settled and busy:
                slot.note(f"Corral {session['state']} while the runtime is still busy")
            if (
                not settled
                and runtime_idle_since is not None
                and now - runtime_idle_since > STUCK_SECONDS
            ):
                state = session["state"] if session else "unreachable"
                slot.stuck = f"runtime idle for {STUCK_SECONDS}s but Corral says {state}"
                return
            if now > deadline:
                state = session["state"] if session else "unreachable"
                slot.stuck = (
                    f"not settled after {SETTLE_SECONDS}s: Corral {state}, runtime "
                    f"{'busy' if busy else 'idle'}, permissions {[a['id'] for a in asks]}"
                )
                await view.abort(native)
                return
            await asyncio.sleep(0.2)

    async def _answer(self, slot: Slot, approval_id: str) -> None:
        with contextlib.suppress(httpx.HTTPError):
            response = await self.api.http.post(
                f"/v1/sessions/{slot.tracked.id}/approvals/{approval_id}",
                json={"decision": "allow_once"},
            )
            if response.status_code not in (200, 409):
                slot.notes.append(
                    f"answering {approval_id}: {response.status_code} {response.text[:120]}"
                )

    async def _check(self, number: int, slot: Slot) -> tuple[list[Finding], int]:
        tracked = slot.tracked
        session, events = await self._snapshot(tracked.id)
        history = await self.views[tracked.runtime].history(tracked.native_id)
        resumed = slot.resumed
        assert resumed is not None
        last = int(session["last_seq"])
        await resumed.wait_for(lambda _: resumed.last_seq >= last, 5.0)
        await resumed.close()
        if resumed.error and not resumed.frames:
            slot.notes.append(f"resume stream: {resumed.error}")
        observed = Observed(
            session=session,
            events=events,
            history=history,
            inputs=tracked.inputs,
            kill_times=self.cluster.kill_times,
            seen_before_kill=tracked.seen,
            resumed=resumed.frames,
            resumed_from=resumed.last_event_id,
            settled=slot.stuck is None,
        )
        found = check(observed)
        if slot.stuck is not None:
            found.insert(0, Finding("settle", slot.stuck))
        if slot.kind is Kind.APPROVAL and slot.primary and slot.stuck is None and slot.sent:
            found += _approval_turn_completed(events, slot.sent[-1].text, self.cluster.kill_times)
        if DUMP_ALL or (set(found) - tracked.reported):
            self._dump(number, tracked, observed, found)
        return found, len(events)

    async def _snapshot(self, session_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The session and its log as of one moment (a stuck session may still be writing)."""
        for _ in range(10):
            before = await self.api.session(session_id)
            events = await self.api.events(session_id)
            after = await self.api.session(session_id)
            if before["last_seq"] == after["last_seq"]:
                break
            await asyncio.sleep(0.2)
        return after, events

    def _dump(
        self, number: int, tracked: Tracked, observed: Observed, found: list[Finding]
    ) -> None:
        """Everything checked, as JSON next to the process logs, for whoever reads a failure."""
        folder = self.cluster.workdir / "observed"
        folder.mkdir(exist_ok=True)
        body = {
            "findings": [dataclasses.asdict(f) for f in found],
            "kill_times": observed.kill_times,
            "session": observed.session,
            "inputs": [dataclasses.asdict(i) for i in observed.inputs],
            "events": observed.events,
            "runtime_history": observed.history,
            "resumed_from": observed.resumed_from,
            "resumed_seqs": [f["seq"] for f in observed.resumed or []],
        }
        path = folder / f"kill{number:03d}-{tracked.id}.json"
        path.write_text(json.dumps(body, indent=1, default=str))


def _approval_turn_completed(
    events: list[dict[str, Any]], text: str, kill_times: list[float]
) -> list[Finding]:
    """The turn whose approval was answered on the new process ran its tool and ended well."""
    started = [e for e in events if e["type"] == "turn.started" and e["data"].get("text") == text]
    if not started:
        return []  # nothing was accepted; input checks cover it
    turn_id = started[-1]["data"]["turn_id"]
    mine = [e for e in events if e.get("turn_id") == turn_id]
    ends = [e["data"].get("stop_reason") for e in mine if e["type"] == "turn.completed"]
    results = [e for e in mine if e["type"] == "tool.result"]
    if ends != ["end_turn"] or not results or results[0]["data"].get("is_error"):
        return [
            Finding("approval.turn", f"{turn_id}: ends {ends} {story(events, turn_id, kill_times)}")
        ]
    return []


def _count(frames: list[dict[str, Any]], kind: str) -> int:
    return sum(1 for f in frames if f.get("type") == kind)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


async def run_rounds(run: CrashRun, kills: int, report: Callable[[str], None]) -> list[Failure]:
    failures: list[Failure] = []
    for number in range(1, kills + 1):
        result = await run.round(number, kills)
        report(result.line)
        failures += result.failures
    return failures


def failure_table(failures: list[Failure]) -> str:
    header = ("db", "seed", "kill", "scenario", "session", "invariant", "what differed")
    rows = [
        (f.backend, str(f.seed), str(f.round), f.scenario, f.session_id, f.invariant, f.detail)
        for f in failures
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)
