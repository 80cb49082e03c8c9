"""Wake stream readers when new events are committed, and hand them the events themselves.

Each session with at least one open stream has a small in-memory *tail*: the latest events this
process recorded (published by the pump right after its commit) or read for some stream. Readers
take new events from the tail instead of querying the store, so one delivered event costs no
database round trip however many streams follow the session. The tail is only trusted while it
is *clean*: events written elsewhere extend it when their notice carries them (another replica's
commit, announced by PostgreSQL NOTIFY); when it does not (too large for a notice; a service
path that notifies without events), or they do not follow on from the tail, it is marked dirty
and the next reader goes to the store once and refreshes it for everyone.

Notifications are the fast path. A backstop (:mod:`corral.sessions.backstop`) still compares,
on an interval, what the store holds with what the tails know, for every followed session in
one query, and wakes the readers of any that fell behind. The interval is long while
notifications are known to be complete (one SQLite process, or the PostgreSQL listener
connected) and short otherwise.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from corral.domain.events import Event

#: Events kept per followed session (a reader further behind reads the store). Live readers
#: are within a few events of the end. Kept small because every one is an object the garbage
#: collector walks: at 64, the tails of 1,000 streams were 64,000 of the ~100,000 objects a
#: young collection walked on a busy replica.
TAIL_EVENTS = 16


class _Tail:
    """What this process knows of one followed session's log: its last seq (None: unknown,
    read the store) and the latest events up to it."""

    __slots__ = ("events", "generation", "known_last", "waiters")

    def __init__(self) -> None:
        self.waiters: set[asyncio.Event] = set()
        self.events: deque[Event] = deque(maxlen=TAIL_EVENTS)
        self.known_last: int | None = None
        self.generation = 0  # bumped whenever the log may have grown behind the tail's back

    def invalidate(self) -> None:
        self.known_last = None
        self.generation += 1

    def publish(self, batch: list[Event]) -> None:
        if self.known_last is None:
            self.generation += 1  # a reader's store read in flight may predate these
            return
        if batch[-1].seq <= self.known_last:
            return
        if batch[0].seq > self.known_last + 1:
            self.invalidate()  # events in between were written elsewhere
            return
        self.events.extend(e for e in batch if e.seq > self.known_last)
        self.known_last = batch[-1].seq

    def after(self, seq: int) -> list[Event] | None:
        if self.known_last is None:
            return None
        if seq >= self.known_last:
            return []
        if not self.events or self.events[0].seq > seq + 1:
            return None  # the reader is further behind than the tail reaches
        # From the newest back: a live reader wants the last one or two events of the tail.
        newer: list[Event] = []
        for event in reversed(self.events):
            if event.seq <= seq:
                break
            newer.append(event)
        newer.reverse()
        return newer

    def absorb(self, batch: list[Event], after: int, generation: int) -> None:
        """A store read of everything after ``after`` that reached the end of the log."""
        if generation != self.generation:
            return  # the log may have grown since that read began
        last = batch[-1].seq if batch else after
        if self.known_last is not None and self.known_last >= last:
            return
        if not (batch and self.events and self.events[-1].seq + 1 == batch[0].seq):
            self.events.clear()
        self.events.extend(batch)
        self.known_last = last


class EventHub:
    def __init__(self) -> None:
        self._tails: dict[str, _Tail] = {}
        #: Set when the process is shutting down: streams end with a reconnect hint and no new
        #: turns are accepted, while turns in flight are handed over through their leases.
        self.draining = False
        #: Whether every write that matters reaches :meth:`notify`/:meth:`publish`/
        #: :meth:`remote`; decides how long streams may wait before re-reading the store.
        self.complete: Callable[[], bool] = lambda: True
        #: Told of every batch this process commits and publishes, whoever recorded it (pumps,
        #: and the service paths pumps never see: turn starts, answered approvals, kills).
        #: Telemetry hangs here; taps are synchronous and must neither block nor raise.
        self.taps: list[Callable[[str, list[Event]], None]] = []

    def drain(self) -> None:
        self.draining = True
        self.wake_all()

    def wake_all(self, *, invalidate: bool = False) -> None:
        """Wake every reader (shutdown; or, with ``invalidate``, the cross-replica channel came
        back and anything may have been missed, so every tail is re-read)."""
        for tail in self._tails.values():
            if invalidate:
                tail.invalidate()
            self._wake(tail)

    # -- writers -------------------------------------------------------------------------------

    def publish(self, session_id: str, events: list[Event]) -> None:
        """Events this process just committed for the session, in seq order."""
        for tap in self.taps:
            tap(session_id, events)
        tail = self._tails.get(session_id)
        if tail is None or not events:
            return
        tail.publish(events)
        self._wake(tail)

    def notify(self, session_id: str) -> None:
        """The session's log grew and the events are not at hand: readers go to the store."""
        tail = self._tails.get(session_id)
        if tail is None:
            return
        tail.invalidate()
        self._wake(tail)

    def remote(
        self, session_id: str, last_seq: int | None, events: list[Event] | None = None
    ) -> bool:
        """A commit somewhere (another replica, or ours echoed back) grew the log to
        ``last_seq`` (None: unknown), appending ``events`` when the notice carried them.
        Returns whether the session's readers were woken (False: nobody follows it here, or
        its tail already holds ``last_seq``)."""
        tail = self._tails.get(session_id)
        if tail is None:
            return False
        if last_seq is not None and tail.known_last is not None and tail.known_last >= last_seq:
            return False  # our own write, already published
        if events:
            tail.publish(events)  # falls back to the store if they do not follow the tail
            self._wake(tail)
            return True
        self.notify(session_id)
        return True

    def follows(self, session_id: str) -> bool:
        """Whether any stream here follows the session (so its events are worth decoding)."""
        return session_id in self._tails

    @staticmethod
    def _wake(tail: _Tail) -> None:
        for waiter in tail.waiters:
            waiter.set()

    # -- readers -------------------------------------------------------------------------------

    def listen(self, session_id: str) -> asyncio.Event:
        """A standing waiter for a stream: registered before it reads, so a notification that
        arrives during a read is not lost. Release it with :meth:`unlisten`."""
        waiter = asyncio.Event()
        self._tails.setdefault(session_id, _Tail()).waiters.add(waiter)
        if self.draining:
            waiter.set()
        return waiter

    def unlisten(self, session_id: str, waiter: asyncio.Event) -> None:
        tail = self._tails.get(session_id)
        if tail is not None:
            tail.waiters.discard(waiter)
            if not tail.waiters:
                del self._tails[session_id]

    def followed(self) -> dict[str, int | None]:
        """Sessions with open streams here, and the last seq their tail knows (None: unknown)."""
        return {sid: tail.known_last for sid, tail in self._tails.items()}

    def cached_after(self, session_id: str, seq: int) -> list[Event] | None:
        """Events after ``seq`` from memory ([] = none yet), or None: read the store."""
        tail = self._tails.get(session_id)
        return tail.after(seq) if tail is not None else None

    def generation(self, session_id: str) -> int:
        tail = self._tails.get(session_id)
        return tail.generation if tail is not None else -1

    def absorb(self, session_id: str, events: list[Event], after: int, generation: int) -> None:
        """Events a reader fetched from the store (everything after ``after``, to the end of the
        log as of a read that began at ``generation``): the tail is known again."""
        tail = self._tails.get(session_id)
        if tail is not None:
            tail.absorb(events, after, generation)
