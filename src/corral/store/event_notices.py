"""What a ``corral_events`` notification says: which log grew, and (when they fit) its new events.

Every transaction that appends to a session's log notifies the other replicas from the same
statement (PostgreSQL NOTIFY, delivered only if the transaction commits). The first line is
``"<session id> <last seq> <origin>"``. When the events appended to that session fit in the
payload (PostgreSQL refuses payloads of 8,000 bytes or more) they follow on a second line as
a JSON array, so a replica whose clients stream the session hands them the events from
memory instead of reading them back from the store: one store read per remote event per
streaming replica was most of the cost of streaming across replicas.

A notice without events (too large, or from a writer that does not attach them) still tells
readers the log grew; they read the store, as before.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from corral.domain.events import Event

#: PostgreSQL NOTIFY channel.
EVENTS_CHANNEL = "corral_events"

#: Payloads must stay under PostgreSQL's 8,000 bytes; the header needs far less than the margin.
MAX_PAYLOAD = 7_900


@dataclass(frozen=True, slots=True)
class Notice:
    session_id: str
    last_seq: int | None
    origin: str
    #: The JSON array of the appended events, undecoded ("" when the notice carries none):
    #: every replica receives every notice and decodes only those of sessions it streams.
    body: str

    def events(self) -> list[Event] | None:
        """The appended events, or None when the notice does not carry them (or is garbled)."""
        if not self.body:
            return None
        try:
            rows = json.loads(self.body)
            return [
                Event(
                    self.session_id,
                    seq,
                    type_,
                    datetime.fromisoformat(ts),
                    data,
                    native_id,
                    native_type,
                    turn_id,
                    trace_id,
                )
                for seq, type_, ts, data, native_id, native_type, turn_id, trace_id in rows
            ]
        except (ValueError, TypeError):
            return None  # not ours to fail on: readers fall back to the store


def header(session_id: str, last_seq: int, origin: str) -> str:
    return f"{session_id} {last_seq} {origin}"


def body(appended: Sequence[Event], data_json: Sequence[str], room: int) -> str:
    """``"\\n[...]"`` carrying ``appended`` (with their ``data`` already JSON-encoded, as the
    insert needs it anyway), or "" when that is longer than ``room`` characters."""
    dumps = json.dumps
    parts = [
        f"[{e.seq},{dumps(e.type)},{dumps(e.ts.isoformat())},{data},{dumps(e.native_id)},"
        f"{dumps(e.native_type)},{dumps(e.turn_id)},{dumps(e.trace_id)}]"
        for e, data in zip(appended, data_json, strict=True)
    ]
    text = "\n[" + ",".join(parts) + "]"
    # json.dumps escapes everything outside ASCII, so characters are bytes here.
    return text if len(text) <= room and text.isascii() else ""


def parse(payload: str) -> Notice:
    head, _, rest = payload.partition("\n")
    session_id, _, tail = head.partition(" ")
    seq, _, origin = tail.partition(" ")
    return Notice(session_id, int(seq) if seq.isdigit() else None, origin, rest)
