"""The hub's in-memory tail: readers get exactly the committed events, never a stale view."""

from __future__ import annotations

from datetime import UTC, datetime

from corral.domain.events import Event
from corral.sessions.hub import TAIL_EVENTS, EventHub

SID = "ses_1"


def ev(seq: int) -> Event:
    return Event(SID, seq, "message.delta", datetime.now(UTC), {}, None, None, None, None)


def evs(first: int, last: int) -> list[Event]:
    return [ev(s) for s in range(first, last + 1)]


def seqs(events: list[Event] | None) -> list[int] | None:
    return None if events is None else [e.seq for e in events]


def test_unknown_until_a_store_read_then_published_events_come_from_memory() -> None:
    hub = EventHub()
    waiter = hub.listen(SID)
    assert hub.cached_after(SID, 0) is None  # nothing known: read the store
    gen = hub.generation(SID)
    hub.absorb(SID, evs(1, 3), 0, gen)
    assert seqs(hub.cached_after(SID, 1)) == [2, 3]
    assert hub.cached_after(SID, 3) == []
    hub.publish(SID, evs(4, 5))
    assert waiter.is_set()
    assert seqs(hub.cached_after(SID, 3)) == [4, 5]


def test_an_empty_read_at_the_end_makes_the_tail_known() -> None:
    hub = EventHub()
    hub.listen(SID)
    hub.absorb(SID, [], 7, hub.generation(SID))
    assert hub.cached_after(SID, 7) == []
    hub.publish(SID, evs(8, 8))
    assert seqs(hub.cached_after(SID, 7)) == [8]


def test_a_publish_during_a_store_read_is_not_lost() -> None:
    hub = EventHub()
    hub.listen(SID)
    gen = hub.generation(SID)  # a reader starts reading the store (sees 1..2)...
    hub.publish(SID, evs(3, 3))  # ...while the pump commits and publishes 3
    hub.absorb(SID, evs(1, 2), 0, gen)
    assert hub.cached_after(SID, 2) is None  # so the reader must look again


def test_a_gap_in_published_events_forces_a_store_read() -> None:
    hub = EventHub()
    hub.listen(SID)
    hub.absorb(SID, evs(1, 2), 0, hub.generation(SID))
    hub.publish(SID, evs(5, 6))  # 3..4 were written by someone else
    assert hub.cached_after(SID, 2) is None


def test_remote_writes_invalidate_but_our_own_echo_does_not() -> None:
    hub = EventHub()
    hub.listen(SID)
    hub.absorb(SID, evs(1, 4), 0, hub.generation(SID))
    hub.remote(SID, 4)  # NOTIFY of our own commit, already published
    assert seqs(hub.cached_after(SID, 3)) == [4]
    hub.remote(SID, 5)  # another replica wrote 5
    assert hub.cached_after(SID, 4) is None
    hub.absorb(SID, evs(5, 5), 4, hub.generation(SID))
    hub.remote(SID, None)  # an old-style notification without a seq
    assert hub.cached_after(SID, 5) is None


def test_events_carried_by_a_remote_notice_come_from_memory() -> None:
    hub = EventHub()
    waiter = hub.listen(SID)
    assert hub.follows(SID) and not hub.follows("ses_other")
    hub.absorb(SID, evs(1, 2), 0, hub.generation(SID))
    waiter.clear()
    assert hub.remote(SID, 4, evs(3, 4))
    assert waiter.is_set()
    assert seqs(hub.cached_after(SID, 2)) == [3, 4]
    assert not hub.remote(SID, 4, evs(3, 4))  # heard twice: already there
    hub.remote(SID, 7, evs(6, 7))  # 5 was announced without its events (or lost)
    assert hub.cached_after(SID, 4) is None


def test_remote_events_during_a_store_read_send_the_reader_back() -> None:
    hub = EventHub()
    hub.listen(SID)
    gen = hub.generation(SID)  # a reader starts reading the store (sees 1..2)...
    hub.remote(SID, 3, evs(3, 3))  # ...while another replica's 3 is announced
    hub.absorb(SID, evs(1, 2), 0, gen)
    assert hub.cached_after(SID, 2) is None


def test_a_reader_behind_the_tail_reads_the_store() -> None:
    hub = EventHub()
    hub.listen(SID)
    last = TAIL_EVENTS + 10
    hub.absorb(SID, evs(1, last), 0, hub.generation(SID))
    assert hub.cached_after(SID, 0) is None
    assert seqs(hub.cached_after(SID, last - 2)) == [last - 1, last]


def test_the_tail_lives_only_while_someone_follows_the_session() -> None:
    hub = EventHub()
    waiter = hub.listen(SID)
    hub.absorb(SID, evs(1, 1), 0, hub.generation(SID))
    hub.unlisten(SID, waiter)
    hub.publish(SID, evs(2, 2))
    assert hub.cached_after(SID, 1) is None
    hub.listen(SID)
    assert hub.cached_after(SID, 1) is None  # a new follower starts from the store


def test_reconnected_channel_invalidates_every_tail() -> None:
    hub = EventHub()
    waiter = hub.listen(SID)
    hub.absorb(SID, evs(1, 1), 0, hub.generation(SID))
    hub.wake_all(invalidate=True)
    assert waiter.is_set() and hub.cached_after(SID, 1) is None
