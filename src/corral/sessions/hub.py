"""Wake stream readers when new events are committed.

In one process this is enough on its own. Streams also re-read the store on a short interval, so
events written by another process (a second replica, ``corral`` CLI tools) still arrive; a
cross-replica notifier can replace the interval later without touching the readers.
"""

from __future__ import annotations

import asyncio


class EventHub:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}
        #: Set when the process is shutting down: streams end with a reconnect hint and no new
        #: turns are accepted, while turns in flight are handed over through their leases.
        self.draining = False

    def drain(self) -> None:
        self.draining = True
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.set()

    def notify(self, session_id: str) -> None:
        for waiter in self._waiters.get(session_id, ()):
            waiter.set()

    def listen(self, session_id: str) -> asyncio.Event:
        """A standing waiter for a stream: registered before it reads, so a notification that
        arrives during a read is not lost. Release it with :meth:`unlisten`."""
        waiter = asyncio.Event()
        self._waiters.setdefault(session_id, set()).add(waiter)
        if self.draining:
            waiter.set()
        return waiter

    def unlisten(self, session_id: str, waiter: asyncio.Event) -> None:
        waiters = self._waiters.get(session_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[session_id]
