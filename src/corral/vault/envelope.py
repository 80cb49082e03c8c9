"""Envelope encryption, pure: a fresh data key per secret, wrapped by the key-encryption key.

Both layers are AES-256-GCM. The associated data binds a ciphertext to its row (secret id, runtime,
scope), so a row copied onto another scope fails to decrypt instead of leaking a credential there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_LEN = 12


@dataclass(frozen=True, slots=True)
class Sealed:
    ciphertext: bytes
    nonce: bytes
    wrapped_dek: bytes


def seal(plaintext: bytes, kek: bytes, aad: bytes) -> Sealed:
    dek = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_LEN)
    ciphertext = AESGCM(dek).encrypt(nonce, plaintext, aad)
    return Sealed(ciphertext=ciphertext, nonce=nonce, wrapped_dek=wrap(dek, kek, aad))


def open_sealed(sealed: Sealed, kek: bytes, aad: bytes) -> bytes:
    dek = unwrap(sealed.wrapped_dek, kek, aad)
    return AESGCM(dek).decrypt(sealed.nonce, sealed.ciphertext, aad)


def wrap(dek: bytes, kek: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_LEN)
    return nonce + AESGCM(kek).encrypt(nonce, dek, aad)


def unwrap(wrapped: bytes, kek: bytes, aad: bytes) -> bytes:
    return AESGCM(kek).decrypt(wrapped[:NONCE_LEN], wrapped[NONCE_LEN:], aad)


def rewrap(wrapped: bytes, old_kek: bytes, new_kek: bytes, aad: bytes) -> bytes:
    """Re-wrap a data key under a new KEK; the secret's ciphertext is untouched."""
    return wrap(unwrap(wrapped, old_kek, aad), new_kek, aad)
