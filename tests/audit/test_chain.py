"""Pure chain verification: every kind of tampering is found, at the record where it happened."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from corral.audit.canonical import GENESIS, record_hash
from corral.audit.chain import Fault, verify
from corral.audit.export import (
    checkpoint_line,
    header_line,
    key_line,
    record_line,
    verify_file,
)
from corral.audit.record import AuditEntry, seal
from corral.audit.signing import SigningKey, key_id_of, load_public, public_pem, signature_ok

KEY = SigningKey.generate()
KEYS = {KEY.key_id: KEY.public}
AT = datetime(2026, 3, 1, tzinfo=UTC)
Chain = tuple[list[dict[str, Any]], list[dict[str, Any]]]


def chain(n: int = 12, every: int = 4) -> Chain:
    records, checkpoints, prev = [], [], GENESIS
    for seq in range(1, n + 1):
        entry = AuditEntry(f"act.{seq}", "thing", f"t{seq}", "org_1", details={"i": seq})
        record = seal(entry, seq, prev, AT)
        records.append(record)
        prev = record["hash"]
        if seq % every == 0:
            checkpoints.append(KEY.sign_checkpoint(seq, prev, AT))
    return records, checkpoints


def test_an_untouched_chain_verifies() -> None:
    records, checkpoints = chain()
    report = verify(records, checkpoints, KEYS)
    assert report.ok and report.records == 12 and report.checkpoints == 3
    assert (report.first_seq, report.last_seq) == (1, 12)
    assert verify([], [], KEYS).ok


def _edit(seq: int) -> Callable[[Chain], Chain]:
    def go(c: Chain) -> Chain:
        c[0][seq - 1]["details"] = {"i": -1}
        return c

    return go


def _edit_and_rehash(seq: int) -> Callable[[Chain], Chain]:
    def go(c: Chain) -> Chain:
        c[0][seq - 1]["action"] = "forged"
        c[0][seq - 1]["hash"] = record_hash(c[0][seq - 1])
        return c

    return go


def _rewrite_tail_from(seq: int) -> Callable[[Chain], Chain]:
    """Edit a record and re-link everything after it: only a checkpoint can tell."""

    def go(c: Chain) -> Chain:
        records = c[0]
        records[seq - 1]["action"] = "forged"
        for i in range(seq - 1, len(records)):
            if i:
                records[i]["prev_hash"] = records[i - 1]["hash"]
            records[i]["hash"] = record_hash(records[i])
        return c

    return go


def _delete(seq: int) -> Callable[[Chain], Chain]:
    return lambda c: ([r for r in c[0] if r["seq"] != seq], c[1])


def _swap(a: int, b: int) -> Callable[[Chain], Chain]:
    def go(c: Chain) -> Chain:
        records = c[0]
        records[a - 1], records[b - 1] = records[b - 1], records[a - 1]
        return c

    return go


def _swap_seqs(a: int, b: int) -> Callable[[Chain], Chain]:
    """Reorder by renumbering (what an UPDATE of two seq columns does)."""

    def go(c: Chain) -> Chain:
        records = c[0]
        records[a - 1]["seq"], records[b - 1]["seq"] = b, a
        records.sort(key=lambda r: r["seq"])
        return c

    return go


def _forge_signature(seq: int) -> Callable[[Chain], Chain]:
    def go(c: Chain) -> Chain:
        cp = next(x for x in c[1] if x["seq"] == seq)
        cp["signature"] = base64.b64encode(bytes(64)).decode()
        return c

    return go


def _foreign_key(seq: int) -> Callable[[Chain], Chain]:
    def go(c: Chain) -> Chain:
        other = SigningKey.generate()
        return c[0], [x if x["seq"] != seq else other.sign_checkpoint(seq, x["hash"], AT)
                      for x in c[1]]  # fmt: skip

    return go


def _resign_at(seq: int, hash_: str) -> Callable[[Chain], Chain]:
    def go(c: Chain) -> Chain:
        return c[0], [x for x in c[1] if x["seq"] != seq] + [KEY.sign_checkpoint(seq, hash_, AT)]

    return go


def _truncate_after(seq: int) -> Callable[[Chain], Chain]:
    return lambda c: ([r for r in c[0] if r["seq"] <= seq], c[1])


@pytest.mark.parametrize(
    ("tamper", "seq", "fault"),
    [
        (_edit(1), 1, Fault.HASH_MISMATCH),
        (_edit(7), 7, Fault.HASH_MISMATCH),
        (_edit(12), 12, Fault.HASH_MISMATCH),
        (_edit_and_rehash(5), 6, Fault.BROKEN_LINK),
        (_edit_and_rehash(12), 12, Fault.CHECKPOINT_MISMATCH),
        (_rewrite_tail_from(2), 4, Fault.CHECKPOINT_MISMATCH),
        (_rewrite_tail_from(9), 12, Fault.CHECKPOINT_MISMATCH),
        (_delete(1), 1, Fault.SEQ_GAP),
        (_delete(6), 6, Fault.SEQ_GAP),
        (_swap(3, 4), 3, Fault.SEQ_GAP),
        (_swap_seqs(3, 8), 3, Fault.HASH_MISMATCH),
        (_swap_seqs(10, 11), 10, Fault.HASH_MISMATCH),
        (_forge_signature(8), 8, Fault.BAD_SIGNATURE),
        (_foreign_key(4), 4, Fault.UNKNOWN_KEY),
        (_resign_at(6, "f" * 64), 6, Fault.CHECKPOINT_MISMATCH),
        (_truncate_after(9), 10, Fault.TRUNCATED),
        (_truncate_after(2), 3, Fault.TRUNCATED),
    ],
)
def test_tampering_is_pinpointed(tamper: Callable[[Chain], Chain], seq: int, fault: Fault) -> None:
    records, checkpoints = tamper(chain())
    report = verify(records, checkpoints, KEYS)
    assert report.problem is not None, "tampering went unnoticed"
    assert (report.problem.seq, report.problem.fault) == (seq, fault), report.problem


def test_a_repeated_record_is_out_of_order() -> None:
    records, checkpoints = chain()
    records.insert(5, dict(records[4]))
    problem = verify(records, checkpoints, KEYS).problem
    assert problem is not None and (problem.seq, problem.fault) == (5, Fault.OUT_OF_ORDER)


def test_the_tail_after_the_last_checkpoint_is_only_as_safe_as_the_chain() -> None:
    records, checkpoints = chain(14, every=4)  # records 13 and 14 follow the last checkpoint
    assert verify(records[:13], checkpoints, KEYS).ok  # dropping 14 cannot be seen
    assert verify(_rewrite_tail_from(13)((records, checkpoints))[0], checkpoints, KEYS).ok


def test_from_checkpoint_starts_at_the_last_good_signature() -> None:
    records, checkpoints = chain()
    records[1]["details"] = {"i": 0}  # before the anchor: not looked at
    report = verify(records, checkpoints, KEYS, from_checkpoint=True)
    assert report.ok and report.anchor == 12 and report.records == 1
    _forge_signature(12)((records, checkpoints))
    report = verify(records, checkpoints, KEYS, from_checkpoint=True)
    assert report.anchor == 8 and report.problem is not None
    assert (report.problem.seq, report.problem.fault) == (12, Fault.BAD_SIGNATURE)
    records[8]["details"] = {"i": 0}  # after the anchor: found
    problem = verify(records, checkpoints, KEYS, from_checkpoint=True).problem
    assert problem is not None and (problem.seq, problem.fault) == (9, Fault.HASH_MISMATCH)


def test_signing_keys_are_fingerprinted_and_exportable() -> None:
    pem = public_pem(KEY.public)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert key_id_of(load_public(pem)) == KEY.key_id
    assert SigningKey.from_raw(KEY.raw()).key_id == KEY.key_id
    checkpoint = KEY.sign_checkpoint(3, "a" * 64, AT)
    assert signature_ok(checkpoint, KEY.public)
    assert not signature_ok({**checkpoint, "seq": 4}, KEY.public)
    assert not signature_ok({**checkpoint, "signature": "not base64!"}, KEY.public)
    with pytest.raises(ValueError):
        load_public("garbage")


def _export(c: Chain, since: int = 0, key: SigningKey = KEY) -> list[str]:
    records, checkpoints = c
    lines = [header_line(since, AT), key_line(key.key_id, public_pem(key.public))]
    marks = {cp["seq"]: cp for cp in checkpoints}
    for record in records:
        lines.append(record_line(record))
        if record["seq"] in marks:
            lines.append(checkpoint_line(marks[record["seq"]]))
    return lines


def test_an_export_file_verifies_and_tampering_with_it_is_found() -> None:
    lines = _export(chain())
    assert verify_file(lines).ok
    record = json.loads(lines[7])
    assert record["seq"] == 5
    lines[7] = record_line({**record, "resource_id": "elsewhere"})
    problem = verify_file(lines).problem
    assert problem is not None and (problem.seq, problem.fault) == (5, Fault.HASH_MISMATCH)


def test_a_pinned_key_overrides_the_keys_a_file_carries() -> None:
    # Someone rewrote the whole file and re-signed it with a key of their own, which they put
    # in the file too: self-consistent, but not with the key the operator pinned earlier.
    records, _ = _rewrite_tail_from(3)(chain())
    impostor = SigningKey.generate()
    forged = [impostor.sign_checkpoint(s, records[s - 1]["hash"], AT) for s in (4, 8, 12)]
    lines = _export((records, forged), key=impostor)
    assert verify_file(lines).ok
    problem = verify_file(lines, keys=KEYS).problem
    assert problem is not None and (problem.seq, problem.fault) == (4, Fault.UNKNOWN_KEY)


def test_a_partial_export_and_a_malformed_line() -> None:
    records, checkpoints = chain()
    lines = _export((records[6:], [c for c in checkpoints if c["seq"] > 6]), since=6)
    assert verify_file(lines).ok
    assert not verify_file(lines[:1] + lines[3:]).ok  # record 7 cut from a "since 6" export
    lines.insert(4, "{not json")
    problem = verify_file(lines).problem
    assert problem is not None and problem.fault is Fault.MALFORMED
    no_header = _export(chain())[1:]
    del no_header[1]  # record 1 gone, and no header to say the export starts later
    problem = verify_file(no_header).problem
    assert problem is not None and (problem.seq, problem.fault) == (1, Fault.SEQ_GAP)
