"""Verifying a chain: pure, over records and checkpoints in any form they were read from.

Records are fed in ``seq`` order. Each must carry the next ``seq`` (no gap, no repeat), link to
the previous record's hash, and hash to its own ``hash``; each checkpoint must be signed by a
known key and sign exactly the hash of the record at its ``seq``. A checkpoint beyond the last
record means records were cut from the end. Verification stops at the first problem, which names
the record's ``seq`` and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from corral.audit.canonical import GENESIS, record_hash
from corral.audit.signing import signature_ok


class Fault(StrEnum):
    HASH_MISMATCH = "hash_mismatch"  # the record was changed after it was written
    BROKEN_LINK = "broken_link"  # prev_hash is not the previous record's hash
    SEQ_GAP = "seq_gap"  # records are missing
    OUT_OF_ORDER = "out_of_order"  # a seq repeats or goes back
    BAD_SIGNATURE = "bad_signature"  # a checkpoint's signature does not verify
    UNKNOWN_KEY = "unknown_key"  # a checkpoint names a key that is not known
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"  # the record differs from what was signed
    TRUNCATED = "truncated"  # a checkpoint signs records that are gone
    MALFORMED = "malformed"  # not a record at all
    CALLS_MISMATCH = "calls_mismatch"  # model-call rows differ from what their batch sealed
    CALLS_UNSEALED = "calls_unsealed"  # model-call rows no audit record seals


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    fault: Fault
    detail: str


@dataclass(frozen=True, slots=True)
class Report:
    records: int
    first_seq: int | None
    last_seq: int | None
    checkpoints: int  # checkpoints checked
    anchor: int | None  # the checkpoint verification started from (None: from genesis)
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


Keys = Mapping[str, Ed25519PublicKey]


def checkpoint_fault(checkpoint: Mapping[str, Any], keys: Keys) -> Problem | None:
    seq = int(checkpoint.get("seq") or 0)
    key = keys.get(str(checkpoint.get("key_id")))
    if key is None:
        return Problem(seq, Fault.UNKNOWN_KEY, f"checkpoint signed by unknown key "
                       f"{checkpoint.get('key_id')!r}")  # fmt: skip
    if not signature_ok(checkpoint, key):
        return Problem(seq, Fault.BAD_SIGNATURE, "checkpoint signature does not verify")
    return None


def last_good_checkpoint(
    checkpoints: Iterable[Mapping[str, Any]], keys: Keys
) -> Mapping[str, Any] | None:
    """The newest checkpoint whose signature verifies: where ``--from-checkpoint`` starts."""
    good = [c for c in checkpoints if checkpoint_fault(c, keys) is None]
    return max(good, key=lambda c: int(c["seq"]), default=None)


class ChainVerifier:
    """Feed records in order; ``finish`` gives the report (the first problem, if any).

    ``start`` is the first expected seq; its record's link is checked against genesis when it is
    1, and taken on trust otherwise (an export that starts later, or a checkpoint anchor, whose
    own checkpoint then vouches for that record's hash).
    """

    def __init__(
        self,
        checkpoints: Iterable[Mapping[str, Any]],
        keys: Keys,
        *,
        start: int = 1,
        anchor: int | None = None,
    ) -> None:
        self._pending = sorted(
            (c for c in checkpoints if int(c.get("seq") or 0) >= start),
            key=lambda c: int(c["seq"]),
        )
        self._keys = keys
        self._expected = start
        self._prev: str | None = GENESIS if start == 1 else None
        self._anchor = anchor
        self._first: int | None = None
        self._count = 0
        self._checked = 0
        self.problem: Problem | None = None

    def feed(self, record: Mapping[str, Any]) -> bool:
        """Check one record; False once a problem is found (feeding more changes nothing)."""
        if self.problem is None:
            self.problem = self._check(record)
        return self.problem is None

    def _check(self, record: Mapping[str, Any]) -> Problem | None:
        seq = record.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            return Problem(self._expected, Fault.MALFORMED, f"record without an integer seq "
                           f"after seq {self._expected - 1}")  # fmt: skip
        if seq > self._expected:
            missing = f"{self._expected}" if seq == self._expected + 1 else (
                f"{self._expected}..{seq - 1}")  # fmt: skip
            return Problem(self._expected, Fault.SEQ_GAP, f"record(s) {missing} missing; "
                           f"the next one present is {seq}")  # fmt: skip
        if seq < self._expected:
            return Problem(seq, Fault.OUT_OF_ORDER, f"seq {seq} appears after seq "
                           f"{self._expected - 1}")  # fmt: skip
        try:
            computed = record_hash(record)
        except ValueError as exc:  # not canonicalizable: hand-edited into something odd
            return Problem(seq, Fault.HASH_MISMATCH, f"record cannot be canonicalized: {exc}")
        if computed != record.get("hash"):
            return Problem(seq, Fault.HASH_MISMATCH, "the record's content does not match "
                           "its hash (changed after it was written)")  # fmt: skip
        if self._prev is not None and record.get("prev_hash") != self._prev:
            return Problem(seq, Fault.BROKEN_LINK, f"prev_hash does not match the hash of "
                           f"record {seq - 1}")  # fmt: skip
        self._prev = computed
        self._expected = seq + 1
        self._count += 1
        self._first = seq if self._first is None else self._first
        while self._pending and int(self._pending[0]["seq"]) <= seq:
            problem = self._checkpoint(self._pending.pop(0), computed)
            if problem is not None:
                return problem
        return None

    def _checkpoint(self, checkpoint: Mapping[str, Any], record_hash_: str) -> Problem | None:
        problem = checkpoint_fault(checkpoint, self._keys)
        if problem is not None:
            return problem
        self._checked += 1
        if checkpoint.get("hash") != record_hash_:
            return Problem(int(checkpoint["seq"]), Fault.CHECKPOINT_MISMATCH, "the record's "
                           "hash differs from the one its signed checkpoint holds")  # fmt: skip
        return None

    def finish(self) -> Report:
        if self.problem is None and self._pending:
            beyond = self._pending[0]
            self.problem = checkpoint_fault(beyond, self._keys) or Problem(
                self._expected, Fault.TRUNCATED, f"a signed checkpoint covers records up to "
                f"{beyond['seq']} but the chain ends at {self._expected - 1}",
            )  # fmt: skip
        last = self._expected - 1 if self._count else None
        return Report(self._count, self._first, last, self._checked, self._anchor, self.problem)


def verify(
    records: Iterable[Mapping[str, Any]],
    checkpoints: Iterable[Mapping[str, Any]],
    keys: Keys,
    *,
    start: int = 1,
    from_checkpoint: bool = False,
) -> Report:
    """Verify a chain from ``start`` (genesis), or from the last good checkpoint at or after it."""
    checkpoints = list(checkpoints)
    anchor = None
    if from_checkpoint:
        found = last_good_checkpoint(checkpoints, keys)
        if found is not None and int(found["seq"]) >= start:
            start = anchor = int(found["seq"])
    verifier = ChainVerifier(checkpoints, keys, start=start, anchor=anchor)
    for record in records:
        seq = record.get("seq")
        if anchor is not None and isinstance(seq, int) and seq < anchor:
            continue
        if not verifier.feed(record):
            break
    return verifier.finish()
