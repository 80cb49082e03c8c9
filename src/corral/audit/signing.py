"""Ed25519 checkpoint signatures: a signed (seq, hash) pins every record up to ``seq``.

A key's id is a fingerprint of its public key, so a checkpoint names the key that can check it
and nobody can pass another key off under that id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from corral.audit.canonical import canonical, format_ts

ALGORITHM = "Ed25519"
#: Signed along with the checkpoint, so a signature cannot be replayed as anything else.
_PURPOSE = "corral-audit-checkpoint/1"


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ak_" + hashlib.sha256(raw).hexdigest()[:24]


def public_pem(public: Ed25519PublicKey) -> str:
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()


def load_public(pem: str) -> Ed25519PublicKey:
    """A PEM public key; ``ValueError`` if it is not an Ed25519 one."""
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


@dataclass(frozen=True, slots=True)
class SigningKey:
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id_of(self.public)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_raw(cls, raw: bytes) -> SigningKey:
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def raw(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def sign_checkpoint(self, seq: int, hash_: str, at: datetime) -> dict[str, Any]:
        checkpoint: dict[str, Any] = {
            "seq": seq, "hash": hash_, "ts": format_ts(at), "key_id": self.key_id,
        }  # fmt: skip
        signature = self.private.sign(_message(checkpoint))
        checkpoint["signature"] = base64.b64encode(signature).decode()
        return checkpoint


def _message(checkpoint: Mapping[str, Any]) -> bytes:
    signed = {k: checkpoint.get(k) for k in ("seq", "hash", "ts", "key_id")}
    return canonical({"purpose": _PURPOSE, **signed})


def signature_ok(checkpoint: Mapping[str, Any], public: Ed25519PublicKey) -> bool:
    try:
        signature = base64.b64decode(str(checkpoint.get("signature", "")), validate=True)
        public.verify(signature, _message(checkpoint))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
