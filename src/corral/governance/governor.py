"""The governor: ``decide()``, the one chokepoint every path that spends or acts goes through.

It keeps the compiled snapshot fresh (reloaded when the epoch moves: a PostgreSQL NOTIFY, the
epoch a caller's key lookup read, or a periodic check as a backstop), evaluates the pure rules,
and for an ``allow`` that spends, reserves the worst case in the ledger before answering.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from corral.domain.errors import BudgetExceeded, GovernanceDenied, LimitReached
from corral.domain.governance import Act, Decision, DecisionRequest, Outcome, Period, Subject
from corral.domain.money import usd_to_micros
from corral.domain.records import Budget
from corral.governance.decide import (
    budget_windows,
    budgets_for,
    evaluate,
    needs_counts,
    per_session_limits,
)
from corral.governance.ledger import BudgetLedger, Part, Reservation, Shortfall
from corral.governance.periods import EPOCH, window_end, window_start
from corral.governance.rules.limits import Effective
from corral.governance.snapshot import Snapshot, compile_snapshot
from corral.store import governance as repo
from corral.store import ledger as ledger_repo
from corral.store.db import Database
from corral.store.types import utcnow

log = logging.getLogger(__name__)

DecisionListener = Callable[[DecisionRequest, Decision, float], None]

_COUNTED = (Act.SESSION_CREATE, Act.MESSAGE_SEND, Act.MODEL_CALL)
_NO_LIMITS = Effective()
_LIMIT_CODES = ("limit_exceeded", "rate_limited")


def raise_for(decision: Decision) -> None:
    """Turn a deny into the error the API reports (problem+json naming scope and policy)."""
    if decision.outcome is not Outcome.DENY:
        return
    extra: dict[str, Any] = {
        "scope": decision.scope,
        "policy_id": decision.policy_id,
        "policy_version": decision.policy_version,
        "epoch": decision.epoch,
    }
    if decision.code == "budget_exceeded":
        raise BudgetExceeded(decision.reason, **extra)
    if decision.code in _LIMIT_CODES:
        retry = 60 if decision.code == "rate_limited" else None
        raise LimitReached(decision.reason, code=decision.code, retry_after=retry, **extra)
    raise GovernanceDenied(decision.reason, code=decision.code, **extra)


class Governor:
    def __init__(
        self,
        db: Database,
        ledger: BudgetLedger,
        *,
        check_every: float = 2.0,
        turn_estimate_usd: float = 0.25,
    ) -> None:
        self._db = db
        self.ledger = ledger
        self._check_every = check_every
        self.turn_estimate = usd_to_micros(turn_estimate_usd)
        self._snap: Snapshot | None = None
        self._checked = 0.0
        self._stale = True
        self._reload = asyncio.Lock()
        self._windows: dict[tuple[str, str], tuple[datetime, datetime | None]] = {}
        #: Told of every decision (request, decision, seconds taken), synchronously: telemetry
        #: and audit hang here, and must not block.
        self.listeners: list[DecisionListener] = []

    # -- the snapshot -----------------------------------------------------------------------

    @property
    def current(self) -> Snapshot | None:
        """The last compiled snapshot (for pricing usage; decisions go through ``decide``)."""
        return self._snap

    def invalidate(self, epoch: int | None = None) -> None:
        """Something changed (a NOTIFY arrived, or this replica changed it): reload next time."""
        if epoch is None or self._snap is None or epoch > self._snap.epoch:
            self._stale = True

    async def snapshot(self, min_epoch: int | None = None) -> Snapshot:
        snap = self._snap
        if (
            snap is not None
            and not self._stale
            and (min_epoch is None or snap.epoch >= min_epoch)
            and time.monotonic() - self._checked < self._check_every
        ):
            return snap
        async with self._reload:
            snap = self._snap
            if (
                snap is not None
                and not self._stale
                and (min_epoch is None or snap.epoch >= min_epoch)
            ):
                # The backstop: one cheap read tells whether anything moved meanwhile.
                async with self._db.read() as conn:
                    current = await repo.read_epoch(conn)
                if current == snap.epoch:
                    self._checked = time.monotonic()
                    return snap
            self._stale = False
            self._snap = await self._load()
            self._checked = time.monotonic()
            return self._snap

    async def _load(self) -> Snapshot:
        async with self._db.read() as conn:
            epoch = await repo.read_epoch(conn)
            policies = await repo.all_policies(conn)
            budgets = await repo.all_budgets(conn)
            prices = await repo.all_prices(conn)
            paused = await repo.paused_agent_ids(conn)
            revoked = await repo.revoked_key_ids(conn)
        snap = compile_snapshot(
            epoch, policies, budgets, prices, paused_agents=paused, revoked_keys=revoked
        )
        log.debug("governance snapshot epoch %s: %s policies", epoch, snap.policy_count)
        return snap

    # -- deciding ---------------------------------------------------------------------------

    async def counts_needed(self, request: DecisionRequest) -> list[tuple[str, str]]:
        """What the caller must count (open sessions, running turns) before ``decide``."""
        return needs_counts(await self.snapshot(request.epoch), request)

    async def limits_for(self, subject: Subject) -> Effective:
        snap = await self.snapshot()
        return per_session_limits(snap, DecisionRequest(Act.TOOL_USE, subject))

    async def decide(self, request: DecisionRequest) -> Decision:
        started = time.perf_counter()
        decision = await self._decide(request)
        for listener in self.listeners:
            try:
                listener(request, decision, time.perf_counter() - started)
            except Exception:
                log.exception("a decision listener failed")
        return decision

    async def _decide(self, request: DecisionRequest) -> Decision:
        snap = await self.snapshot(request.epoch)
        scopes = request.subject.scope_keys()
        decision = evaluate(snap, request, scopes)
        if decision.outcome is not Outcome.ALLOW:
            return decision
        at = request.at or utcnow()
        budgets = budgets_for(snap, request, scopes)
        counted = request.act in _COUNTED and request.subject.key_id is not None
        limits = (
            per_session_limits(snap, request, scopes)
            if (budgets or counted) and any(s in snap.limits for s in scopes)
            else _NO_LIMITS
        )
        if counted:
            rate = self._rate_parts(request, limits, at)
            if rate:
                got = await self.ledger.reserve(rate, 60.0)
                if isinstance(got, Shortfall):
                    return self._shortfall(snap, got, decision.epoch)
                self.ledger.settle_soon(got)  # the request counts once admitted this far
        cost = self._cost(request, limits) if budgets else None
        if cost is None:
            return decision
        parts = [
            Part(f"budget:{b.id}", self._window(b, at), b.limit_micros, cost, version=b.version)
            for b in budgets
        ]
        if request.hold_as is not None:
            reserved = await self.ledger.reserve_held(request.hold_as, parts)
        else:
            reserved = await self.ledger.reserve(parts, 600.0)
        if isinstance(reserved, Shortfall):
            return self._shortfall(snap, reserved, decision.epoch)
        return replace(decision, reservation=reserved)

    def _cost(self, request: DecisionRequest, limits: Effective) -> int | None:
        if request.cost_micros is not None:
            return request.cost_micros
        if request.act is Act.MESSAGE_SEND:
            estimate = limits.micros("turn_estimate_usd")
            return self.turn_estimate if estimate is None else estimate
        return None

    def _window(self, budget: Budget, at: datetime) -> datetime:
        """The budget's current window start; cached per (period, timezone) until it ends."""
        if budget.period == Period.TOTAL:
            return EPOCH
        key = (budget.period, budget.timezone)
        cached = self._windows.get(key)
        if cached is not None and cached[0] <= at and (cached[1] is None or at < cached[1]):
            return cached[0]
        period = Period(budget.period)
        start = window_start(period, budget.timezone, at)
        self._windows[key] = (start, window_end(period, budget.timezone, at))
        return start

    def _rate_parts(self, request: DecisionRequest, limits: Effective, at: datetime) -> list[Part]:
        rpm = limits.get("requests_per_minute")
        if rpm is None:
            return []
        minute = window_start(Period.MINUTE, "UTC", at)
        key = request.subject.key_id
        return [Part(f"rate:{key}", minute, int(rpm), 1, version=int(rpm), fixed=True)]

    def _shortfall(self, snap: Snapshot, short: Shortfall, epoch: int) -> Decision:
        if short.account.startswith("rate:"):
            return Decision(
                Outcome.DENY, "rate_limited",
                f"request rate limit of {short.limit} per minute reached",
                scope=f"key:{short.account.removeprefix('rate:')}", epoch=epoch,
            )  # fmt: skip
        budget = snap.budgets_by_id.get(short.account.removeprefix("budget:"))
        scope = f"{budget.scope_kind}:{budget.scope_id}" if budget else short.account
        period = f"{budget.period} " if budget else ""
        reason = (
            f"the {period}budget of {scope} (${short.limit / 1e6:.2f}) has "
            f"${short.available / 1e6:.4f} left, less than this needs"
        )
        return Decision(Outcome.DENY, "budget_exceeded", reason, scope=scope, epoch=epoch)

    # -- after the act ----------------------------------------------------------------------

    async def settle(self, reservation: Reservation | None, cost_micros: int) -> list[Budget]:
        """Replace the reservation by the real cost; budgets whose soft threshold it crossed."""
        if reservation is None:
            return []
        await self.ledger.settle(reservation, cost_micros)
        return await self._soft_crossed([(p.account, p.window) for p in reservation.parts])

    async def release(self, reservation: Reservation | None) -> None:
        """The act never happened: give the reservation back (nothing spent)."""
        if reservation is None:
            return
        if reservation.holder is not None:
            await self.ledger.settle(reservation, 0)
        else:
            self.ledger.release(reservation)

    async def charge(self, subject: Subject, cost_micros: int) -> list[Budget]:
        """Record spend nothing was reserved for (usage a runtime reported after its turn)."""
        snap = await self.snapshot()
        request = DecisionRequest(Act.MESSAGE_SEND, subject)
        keys = [
            (f"budget:{b.id}", w) for b, w in budget_windows(budgets_for(snap, request), utcnow())
        ]
        if not keys or cost_micros <= 0:
            return []
        await self.ledger.charge(keys, cost_micros)
        return await self._soft_crossed(keys)

    async def settle_held(self, holder: str, cost_micros: int) -> list[Budget]:
        """Settle a durable reservation by name (a turn that this process did not start)."""
        return await self._soft_crossed(await self.ledger.settle_held(holder, cost_micros))

    async def _soft_crossed(self, keys: list[tuple[str, datetime]]) -> list[Budget]:
        snap = self._snap
        if snap is None:
            return []
        soft = {
            k: b
            for k in keys
            if k[0].startswith("budget:")
            and (b := snap.budgets_by_id.get(k[0].removeprefix("budget:"))) is not None
            and b.soft_percent is not None
        }
        if not soft:
            return []
        crossed = []
        async with self._db.write() as conn:
            totals = await ledger_repo.totals(conn, list(soft))
            for key, budget in soft.items():
                t = totals.get(key)
                threshold = budget.limit_micros * (budget.soft_percent or 0) // 100
                if t is not None and not t.soft_alerted and t.spent >= threshold:
                    if await ledger_repo.mark_soft_alerted(conn, *key):
                        crossed.append(budget)
        return crossed

    # -- reporting --------------------------------------------------------------------------

    async def usage(
        self, budgets: list[Budget]
    ) -> dict[str, tuple[int, int, datetime, datetime | None]]:
        """Per budget id: (spent, reserved, window start, window end) of the current window."""
        now = utcnow()
        keys = {
            b.id: (f"budget:{b.id}", window_start(Period(b.period), b.timezone, now))
            for b in budgets
        }
        async with self._db.read() as conn:
            totals = await ledger_repo.totals(conn, list(keys.values()))
        out = {}
        for b in budgets:
            t = totals.get(keys[b.id])
            end = window_end(Period(b.period), b.timezone, now)
            out[b.id] = (t.spent if t else 0, t.reserved if t else 0, keys[b.id][1], end)
        return out

    async def remaining(self, limit: int = 2000) -> list[tuple[Budget, int]]:
        """Budgets (at most ``limit``) with the micro-dollars their current window has left."""
        budgets = list((await self.snapshot()).budgets_by_id.values())[:limit]
        if not budgets:
            return []
        usage = await self.usage(budgets)
        return [(b, b.limit_micros - usage[b.id][0] - usage[b.id][1]) for b in budgets]
