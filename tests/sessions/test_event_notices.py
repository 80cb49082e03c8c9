"""Notices carry the appended events to the other replicas, when they fit, exactly as stored."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import asyncpg
import pytest

from corral.domain.events import Event, EventDraft, EventType
from corral.sessions.batch import Write, record_all
from corral.store import event_notices
from corral.store import events as event_repo
from corral.store.event_notices import EVENTS_CHANNEL, MAX_PAYLOAD
from corral.store.types import utcnow
from tests.support.corral import CorralServer
from tests.support.databases import _asyncpg_dsn
from tests.support.fleet import developer_agent, make_session

SID = "ses_n"


def _event(seq: int, data: dict[str, object]) -> Event:
    at = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)
    return Event(SID, seq, "message.delta", at, data, f"n:{seq}", "part.delta", "turn_1", None)


def test_a_notice_round_trips_its_events() -> None:
    events = [_event(4, {"text": "héllo ✓", "n": 1.5}), _event(5, {"nested": {"a": [1, None]}})]
    head = event_notices.header(SID, 5, "replica-a")
    body = event_notices.body(events, [_json(e) for e in events], MAX_PAYLOAD - len(head))
    assert body.isascii()
    notice = event_notices.parse(head + body)
    assert (notice.session_id, notice.last_seq, notice.origin) == (SID, 5, "replica-a")
    assert notice.events() == events


def test_events_that_do_not_fit_are_left_out_and_the_notice_still_counts() -> None:
    big = [_event(1, {"text": "x" * MAX_PAYLOAD})]
    head = event_notices.header(SID, 1, "replica-a")
    assert event_notices.body(big, [_json(e) for e in big], MAX_PAYLOAD - len(head)) == ""
    notice = event_notices.parse(head)
    assert (notice.last_seq, notice.events()) == (1, None)


def test_a_garbled_body_means_read_the_store() -> None:
    assert event_notices.parse(f"{SID} 3 r\n[[3, 1]]").events() is None
    assert event_notices.parse(f"{SID} 3 r\nnot json").events() is None
    assert event_notices.parse(f"{SID} ? r").last_seq is None


def _json(event: Event) -> str:
    return json.dumps(event.data)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_committed_batches_announce_their_events_as_stored(
    corral: CorralServer, opencode_sim_url: str
) -> None:
    db = corral.services.db
    dev, agent = await developer_agent(corral, opencode_sim_url, "n@x.io")
    small = (await make_session(corral, dev["key"], agent["id"]))["id"]
    large = (await make_session(corral, dev["key"], agent["id"]))["id"]
    heard: list[str] = []
    conn = await asyncpg.connect(_asyncpg_dsn(db.url))
    try:
        await conn.add_listener(EVENTS_CHANNEL, lambda _c, _p, _ch, payload: heard.append(payload))
        delta, usage = EventType.MESSAGE_DELTA, EventType.USAGE
        writes = [
            Write(
                small,
                [EventDraft(delta, {"text": "ünï"}, "d:1"), EventDraft(delta, {}, "d:2")],
                "t",
            ),
            Write(large, [EventDraft(delta, {"text": "y" * 9000}, "d:1")], "t"),
            # Usage takes the one-by-one path (``store.events.insert_batch``): also announced.
            Write(small, [EventDraft(usage, {"input_tokens": 3}, "u:1")], "t"),
        ]
        async with db.write() as write:
            await record_all(write, writes, utcnow())
        for _ in range(100):
            if len(heard) >= 3:
                break
            await asyncio.sleep(0.05)
        async with db.read() as read:
            stored = {sid: await event_repo.after(read, sid, 0, 100) for sid in (small, large)}
    finally:
        await conn.close()
    notices = [event_notices.parse(p) for p in heard]
    carried = [e for n in notices if n.session_id == small for e in (n.events() or [])]
    assert [(e.seq, e.type, e.ts, e.data, e.native_id, e.turn_id) for e in carried] == [
        (e.seq, e.type, e.ts, e.data, e.native_id, e.turn_id) for e in stored[small][1:]
    ]
    (big,) = [n for n in notices if n.session_id == large]
    assert big.events() is None and big.last_seq == stored[large][-1].seq
    assert all(len(p.encode()) < 8000 for p in heard)
