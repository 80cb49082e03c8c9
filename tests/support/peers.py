"""Real runtime servers started by the tests: stopping their process groups, reading their logs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path


def stop_group(proc: subprocess.Popen[bytes] | None, grace: float = 5.0) -> None:
    """SIGTERM the process group started with ``start_new_session=True``; SIGKILL it after
    ``grace`` seconds, and once more afterwards for children that outlived the leader."""
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def read_tail(path: Path, chars: int = 4000) -> str:
    """The end of a server's log, for a failure message ("" when there is none)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class PeerProcess:
    """What every real-server handle shares: its process group and its log."""

    proc: subprocess.Popen[bytes] | None
    log_path: Path
    stop_grace = 5.0
    tail_chars = 4000

    def stop(self, grace: float | None = None) -> None:
        proc, self.proc = self.proc, None
        stop_group(proc, self.stop_grace if grace is None else grace)

    def log_tail(self, chars: int | None = None) -> str:
        return read_tail(self.log_path, self.tail_chars if chars is None else chars)
