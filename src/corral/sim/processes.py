"""Helpers for running simulators and Corral itself as child processes (tests, benchmarks).

``free_port`` picks a loopback port for a child to bind; ``die_with_parent`` is a
``preexec_fn`` that asks Linux to SIGKILL the child when its parent dies, so a killed test or
benchmark never leaves servers behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import sys
from typing import Any

__all__ = ["die_with_parent", "free_port"]

_PR_SET_PDEATHSIG = 1
_LIBC: Any = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        _LIBC = ctypes.CDLL(None, use_errno=True)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """Runs in the child between fork and exec (``preexec_fn``)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
