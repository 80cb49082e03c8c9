"""Group commit records exactly what recording write by write would, on both databases."""

from __future__ import annotations

from typing import Any

from corral.domain.events import EventDraft, EventType, turn_end_native_id
from corral.sessions import recorder
from corral.sessions.batch import Write, is_plain, record_all
from corral.store import events as event_repo
from corral.store import sessions as session_repo
from corral.store.types import utcnow
from tests.support.corral import CorralServer, ok
from tests.support.fleet import developer_agent


def _delta(n: int, text: str) -> EventDraft:
    return EventDraft(EventType.MESSAGE_DELTA, {"text": text}, f"delta:{n}", "message.part.delta")


def _script(turn: str) -> list[tuple[int, list[EventDraft], str | None]]:
    """(session index, drafts, turn id): interleaved, with repeats and effectful events."""
    started = EventDraft(EventType.TURN_STARTED, {"turn_id": turn}, f"turn-start:{turn}")
    usage = EventDraft(EventType.USAGE, {"input_tokens": 5, "output_tokens": 7}, "usage:1")
    done = EventDraft(
        EventType.TURN_COMPLETED, {"stop_reason": "end_turn"}, turn_end_native_id(turn)
    )
    return [
        (0, [started], turn),
        (1, [started], turn),
        (0, [_delta(1, "a")], turn),
        (1, [_delta(1, "x"), _delta(2, "y")], turn),
        (0, [_delta(1, "a")], turn),  # a redelivered native event
        (2, [EventDraft(EventType.MESSAGE_DELTA, {"text": "corral"}, None)], None),
        (0, [_delta(2, "b"), _delta(2, "b")], turn),  # a repeat inside one write
        (1, [usage], turn),  # effectful: this session takes the one-by-one path
        (0, [_delta(3, "c")], turn),
        (1, [done], turn),
        (0, [done], turn),
    ]


async def _sessions(corral: CorralServer, key: str, agent_id: str, n: int) -> list[str]:
    async with corral.client(key) as client:
        made = [
            await ok(await client.post("/v1/sessions", json={"agent_id": agent_id}), 201)
            for _ in range(n)
        ]
    return [s["id"] for s in made]


def _shape(events: list[Any]) -> list[tuple[Any, ...]]:
    return [(e.seq, e.type, e.data, e.native_id, e.turn_id) for e in events]


async def test_batch_matches_write_by_write(corral: CorralServer, opencode_sim_url: str) -> None:
    dev, agent = await developer_agent(corral, opencode_sim_url, "b@x.io")
    batched = await _sessions(corral, dev["key"], agent["id"], 3)
    single = await _sessions(corral, dev["key"], agent["id"], 3)
    db = corral.services.db
    script = _script("turn_1")
    writes = [Write(batched[i], drafts, turn) for i, drafts, turn in script]
    assert not all(is_plain(w) for w in writes) and any(is_plain(w) for w in writes)
    async with db.write() as conn:
        stored = await record_all(conn, writes, utcnow())
    expected = []
    for i, drafts, turn in script:
        async with db.write() as conn:
            expected.append(
                await recorder.record(conn, single[i], drafts, turn_id=turn, at=utcnow())
            )
    assert [_shape(s) for s in stored] == [_shape(e) for e in expected]
    async with db.read() as conn:
        for b, s in zip(batched, single, strict=True):
            got_b, got_s = (
                await event_repo.after(conn, b, 0, 500),
                await event_repo.after(conn, s, 0, 500),
            )
            # After each session's own session.created (its native id differs).
            assert _shape(got_b[1:]) == _shape(got_s[1:])
            rb, rs = (
                await session_repo.get_session(conn, b),
                await session_repo.get_session(conn, s),
            )
            assert rb and rs
            for field in ("state", "stop_reason", "last_seq", "input_tokens", "output_tokens"):
                assert getattr(rb, field) == getattr(rs, field), field
