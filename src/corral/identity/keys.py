"""Corral API keys: ``ck_<prefix>_<secret>``, stored only as a keyed hash.

The prefix is a public lookup handle (shown in listings, safe in logs); the secret part never leaves
the response that created the key. Hashes are HMAC-SHA256 under a server-side key, so a stolen
database alone cannot be used to test guesses offline.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from corral.domain.errors import Unauthenticated

KEY_SCHEME = "ck"
_PREFIX_LEN = 10


@dataclass(frozen=True, slots=True)
class NewKey:
    plaintext: str
    prefix: str


def generate() -> NewKey:
    handle = secrets.token_hex(_PREFIX_LEN // 2)
    secret = secrets.token_urlsafe(32)
    prefix = f"{KEY_SCHEME}_{handle}"
    return NewKey(plaintext=f"{prefix}_{secret}", prefix=prefix)


def prefix_of(plaintext: str) -> str:
    """The lookup handle of a presented key, or Unauthenticated if it is not shaped like one."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or len(parts[1]) != _PREFIX_LEN or not parts[2]:
        raise Unauthenticated("API key is malformed")
    return f"{parts[0]}_{parts[1]}"


def hash_key(plaintext: str, hash_secret: bytes) -> str:
    return hmac.new(hash_secret, plaintext.encode(), hashlib.sha256).hexdigest()


def matches(plaintext: str, stored_hash: str, hash_secret: bytes) -> bool:
    return hmac.compare_digest(hash_key(plaintext, hash_secret), stored_hash)
