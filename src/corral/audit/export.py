"""The export file: JSON Lines a SIEM can ingest and ``corral audit verify --file`` can check.

One JSON object per line, in this order::

    {"export": {"format": "corral-audit/1", "since": 0, "exported_at": "..."}}
    {"public_key": {"key_id": "ak_...", "algorithm": "Ed25519", "pem": "-----BEGIN ..."}}
    {"seq": 1, "ts": "...", ..., "prev_hash": "000...", "hash": "..."}     a record, canonical
    {"checkpoint": {"seq": 1000, "hash": "...", "ts": "...", "key_id": "ak_...", "signature": ..}}

Records are written in their canonical (RFC 8785) form, exactly the bytes that were hashed; a
checkpoint follows the record it signs. The public keys in the file are a convenience: pin the
key you fetched earlier with ``--public-key`` for a verification the file cannot fool.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from corral.audit.canonical import canonical, format_ts
from corral.audit.chain import Report, verify
from corral.audit.signing import ALGORITHM, load_public

FORMAT = "corral-audit/1"


def header_line(since: int, at: datetime) -> str:
    return json.dumps({"export": {"format": FORMAT, "since": since, "exported_at": format_ts(at)}})


def key_line(key_id: str, pem: str) -> str:
    return json.dumps({"public_key": {"key_id": key_id, "algorithm": ALGORITHM, "pem": pem}})


def record_line(record: Mapping[str, Any]) -> str:
    return canonical(dict(record)).decode()


def checkpoint_line(checkpoint: Mapping[str, Any]) -> str:
    return json.dumps({"checkpoint": dict(checkpoint)}, sort_keys=True)


@dataclass
class ExportFile:
    records: list[Any] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    since: int = 0


def parse(lines: Iterable[str]) -> ExportFile:
    """Read an export; a line that is not a JSON object stays in as a malformed record."""
    found = ExportFile()
    for line in lines:
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            found.records.append({"seq": None})
            continue
        meta = value.keys() == {"export"} or value.keys() == {"public_key"} or (
            value.keys() == {"checkpoint"})  # fmt: skip
        if not meta:
            found.records.append(value)
        elif "export" in value:
            found.since = int(value["export"].get("since") or 0)
        elif "checkpoint" in value:
            found.checkpoints.append(value["checkpoint"])
        else:
            key = value["public_key"]
            try:
                found.keys[str(key["key_id"])] = load_public(str(key["pem"]))
            except (KeyError, ValueError):
                continue  # an unusable key verifies nothing: its checkpoints are reported
    return found


def verify_file(
    lines: Iterable[str],
    *,
    from_checkpoint: bool = False,
    keys: Mapping[str, Ed25519PublicKey] | None = None,
) -> Report:
    """Verify an export; ``keys`` (pinned public keys) replace the ones the file carries."""
    found = parse(lines)
    return verify(
        found.records, found.checkpoints, keys if keys is not None else found.keys,
        start=found.since + 1, from_checkpoint=from_checkpoint,
    )  # fmt: skip
