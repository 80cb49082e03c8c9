"""Settings, from ``CORRAL_*`` environment variables (and a ``.env`` file if present)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CORRAL_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./.corral/corral.db"
    master_key: str | None = Field(default=None, repr=False)
    key_file: Path = Path(".corral/master.key")
    host: str = "127.0.0.1"
    port: int = 8700
    auto_migrate: bool = True
    bootstrap_org: str = "default"
    bootstrap_admin_email: str = "admin@corral.local"
    max_body_bytes: int = 1_048_576
    sse_heartbeat_seconds: float = 15.0
    # Streams are woken (and handed the events) by the process that records them, and across
    # replicas by PostgreSQL LISTEN/NOTIFY. As a backstop, each process checks every followed
    # session's last seq in the store (one query for all of them) every sse_backstop_seconds
    # while that channel is up, every sse_poll_seconds while it is down.
    sse_poll_seconds: float = 1.0
    sse_backstop_seconds: float = 15.0
    # Database connections per process (PostgreSQL): keep replicas x (size + overflow) under
    # the server's max_connections (100 by default) with room for the listener and tools.
    db_pool_size: int = 10
    db_max_overflow: int = 20
    pump_grace_seconds: float = 3.0
    pump_silence_seconds: float = 30.0
    # Which instance holds a turn's lease. Defaults to host:port, so a restarted replica takes
    # its own turns back at once; give each replica a distinct value.
    instance_id: str | None = None
    lease_seconds: float = 15.0
    lease_check_seconds: float = 2.0
    log_level: str = "info"
    # `corral serve` logs one JSON object per line (with trace ids), or plain text.
    log_format: Literal["json", "text"] = "json"
    # Put prompt, response and tool contents on spans (gen_ai.input.messages ...). Off: spans
    # carry no message or tool text at all (they are likely personal data).
    trace_content: bool = False
    # On SIGTERM: new turns are refused at once, streams end with a reconnect hint, and the
    # process exits within this many seconds, handing its turns over through their leases.
    shutdown_grace_seconds: float = 10.0
    # Governance. A turn on a budgeted scope reserves this much until it settles at its real
    # cost (runtimes report cost only afterwards); a "limits" policy can set its own.
    turn_estimate_usd: float = 0.25
    # Each replica re-checks the governance epoch at least this often (PostgreSQL NOTIFY and
    # every caller's key lookup usually tell it sooner).
    governance_check_seconds: float = 2.0
    # A replica's budget slices outlive it by at most this long before others sweep them.
    ledger_hold_seconds: float = 30.0
    # A turn's own reservation, once its turn is over or never started, is swept after this.
    ledger_turn_grace_seconds: float = 120.0
    # The LLM gateway. A request with no output bound gets this one (it also sizes the budget
    # reservation, so keep it near what your models really produce); a model route may set its
    # own. Request bodies above gateway_max_body_bytes are refused with 413.
    gateway_max_output_tokens: int = 4096
    gateway_max_body_bytes: int = 32 * 1024 * 1024
    # How long a presented key's row is trusted before it is read again (revocation does not
    # wait for this: it moves the governance epoch, which every gateway worker follows).
    gateway_key_cache_seconds: float = 30.0
    # Where runtimes reach the gateway, for the session keys Corral hands them (defaults to
    # this server's own address).
    gateway_public_url: str | None = None
    # Session keys live this long (renewed when a session is used again).
    gateway_session_key_hours: float = 24.0
    # How often expired approvals are resolved to deny and runaway turns are checked.
    governance_tick_seconds: float = 1.0
    # Audit: a signed checkpoint after this many records, or this long after the last one.
    audit_checkpoint_records: int = 1000
    audit_checkpoint_seconds: float = 300.0

    def instance(self) -> str:
        return self.instance_id or f"{socket.gethostname()}:{self.port}"
