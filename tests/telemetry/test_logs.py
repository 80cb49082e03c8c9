"""Log lines: JSON that parses, trace ids when a span is current, and never a secret."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from corral.telemetry import logs
from corral.telemetry.propagation import turn_context
from corral.telemetry.spans import trace_id_of, turn_span_id

KEY = "ck_0123456789_s3cr3tS3cr3tS3cr3t-_xyz"


@contextmanager
def _configured(fmt: logs.LogFormat) -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    handler = logs.configure(fmt, "debug")  # writes to the sys.stderr capsys installed
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _read(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]


def test_json_lines_carry_the_current_trace(capsys: pytest.CaptureFixture[str]) -> None:
    log = logging.getLogger("corral.test")
    with _configured("json"):
        log.info("outside %s", "a turn")
        with turn_context("turn_1"):
            log.warning("inside", extra={"session_id": "ses_1"})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    outside, inside, failed = _read(capsys)
    assert outside["message"] == "outside a turn" and outside["level"] == "info"
    assert outside["logger"] == "corral.test" and str(outside["timestamp"]).endswith("+00:00")
    assert "trace_id" not in outside
    assert inside["trace_id"] == trace_id_of("turn_1")
    assert inside["span_id"] == turn_span_id("turn_1")
    assert inside["session_id"] == "ses_1"
    assert "ValueError: boom" in str(failed["exception"])


def test_secrets_never_reach_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    log = logging.getLogger("corral.test")
    with _configured("json"):
        log.info("auth with %s", KEY)
        log.info("header Authorization: Bearer %s sent", KEY)
        log.info('config {"password": "hunter2", "api_key": "sk-live-123", "name": "ok"}')
        log.info("dsn user=corral password=hunter2 host=db")
        log.info("creds", extra={"secret": "hunter2", "db_password": "hunter2",
                                 "fields": {"api_key": "x1"}})  # fmt: skip
        try:
            raise RuntimeError(f"rejected key {KEY}")
        except RuntimeError:
            log.exception("login failed")
    text = capsys.readouterr().err
    for secret in ("s3cr3tS3cr3t", "hunter2", "sk-live-123", '"x1"'):
        assert secret not in text
    parsed = [json.loads(line) for line in text.splitlines()]
    assert parsed[0]["message"] == "auth with ck_0123456789_[REDACTED]"  # the public prefix stays
    assert parsed[1]["message"] == "header Authorization: [REDACTED] sent"
    assert '"name": "ok"' in str(parsed[2]["message"])
    assert parsed[3]["message"] == "dsn user=corral password=[REDACTED] host=db"
    assert parsed[4]["secret"] == "[REDACTED]" and parsed[4]["db_password"] == "[REDACTED]"
    assert parsed[4]["fields"] == {"api_key": "[REDACTED]"}


def test_text_format_redacts_too(capsys: pytest.CaptureFixture[str]) -> None:
    with _configured("text"), turn_context("turn_2"):
        logging.getLogger("corral.test").info("using %s", KEY)
    line = capsys.readouterr().err.strip()
    assert "s3cr3t" not in line and "ck_0123456789_[REDACTED]" in line
    assert f"trace_id={trace_id_of('turn_2')}" in line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_corral_serve_logs_json(tmp_path: Path) -> None:
    """The real server: uvicorn's lines and Corral's both come out as redacted JSON."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CORRAL_", "OTEL_"))}
    env.update(
        CORRAL_DATABASE_URL=f"sqlite:///{tmp_path / 'corral.db'}",
        CORRAL_KEY_FILE=str(tmp_path / "master.key"), CORRAL_PORT=str(port),
        CORRAL_LOG_FORMAT="json",
    )  # fmt: skip
    corral = str(Path(sys.executable).with_name("corral"))
    proc = await asyncio.create_subprocess_exec(
        corral, "serve", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(200):
                try:
                    await client.get("/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            await client.get("/v1/me", params={"api_key": "hunter2"},
                             headers={"Authorization": f"Bearer {KEY}"})  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    # (the first boot's "key shown only once" warning is the CLI's, not a log record)
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert len(lines) > 5 and not any("color_message" in line for line in lines)
    assert any(line["logger"] == "uvicorn.access" for line in lines)
    assert any("/v1/me?api_key=[REDACTED]" in str(line["message"]) for line in lines)
    assert "hunter2" not in err.decode() and "s3cr3t" not in err.decode()
