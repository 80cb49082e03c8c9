"""The key-encryption keys (KEKs), versioned, from ``CORRAL_MASTER_KEY`` or a 0600 key file.

``CORRAL_MASTER_KEY`` holds either one base64 32-byte key (version 1) or the same JSON document the
key file holds: ``{"active": N, "keys": {"1": b64, ...}, "hash_key": b64}``. ``hash_key`` keys the
API-key hashes; it is derived once and never rotated with the KEKs, so rotating the master key
does not invalidate anybody's API key.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_LEN = 32


class KeyringError(Exception):
    pass


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    raw = base64.b64decode(text, validate=True)
    if len(raw) != KEY_LEN:
        raise KeyringError("master keys must be 32 bytes, base64-encoded")
    return raw


def _derive_hash_key(master: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_LEN, salt=None, info=b"corral api-key hash"
    ).derive(master)


@dataclass
class Keyring:
    keys: dict[int, bytes]
    active: int
    hash_key: bytes
    path: Path | None = field(default=None)

    @property
    def active_key(self) -> bytes:
        return self.keys[self.active]

    def key(self, version: int) -> bytes:
        try:
            return self.keys[version]
        except KeyError:
            raise KeyringError(f"master key version {version} is not in the keyring") from None

    def to_json(self) -> str:
        return json.dumps(
            {
                "active": self.active,
                "keys": {str(v): _b64(k) for v, k in sorted(self.keys.items())},
                "hash_key": _b64(self.hash_key),
            },
            indent=2,
        )

    def with_new_key(self) -> Keyring:
        version = max(self.keys) + 1
        return Keyring(
            keys={**self.keys, version: os.urandom(KEY_LEN)},
            active=version,
            hash_key=self.hash_key,
            path=self.path,
        )

    def save(self) -> None:
        if self.path is None:
            raise KeyringError(
                "the keyring comes from CORRAL_MASTER_KEY; rotate by writing a new value there"
            )
        write_private(self.path, self.to_json())


def write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically to a file only the owner can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def parse(text: str, path: Path | None = None) -> Keyring:
    text = text.strip()
    if not text.startswith("{"):
        master = _unb64(text)
        return Keyring(keys={1: master}, active=1, hash_key=_derive_hash_key(master), path=path)
    try:
        doc = json.loads(text)
        keys = {int(v): _unb64(k) for v, k in doc["keys"].items()}
        active = int(doc["active"])
        hash_key = _unb64(doc["hash_key"])
    except (KeyError, ValueError, TypeError) as exc:
        raise KeyringError(f"keyring is not valid: {exc}") from exc
    if active not in keys:
        raise KeyringError("keyring's active version has no key")
    return Keyring(keys=keys, active=active, hash_key=hash_key, path=path)


def load(env_value: str | None, key_file: Path) -> Keyring:
    """From the environment if set, else the key file, created (0600) on first start."""
    if env_value:
        return parse(env_value)
    if key_file.exists():
        return parse(key_file.read_text(), key_file)
    master = os.urandom(KEY_LEN)
    ring = Keyring(keys={1: master}, active=1, hash_key=_derive_hash_key(master), path=key_file)
    ring.save()
    return ring
