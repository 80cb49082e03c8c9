"""The governance core, wired the one way both composition roots need it: the audit log, the
budget ledger and the governor, with decisions audited and the governor following the
governance epoch. ``corral serve`` (:mod:`corral.services`) adds sessions, telemetry and the
rest around it; a ``corral gateway`` worker (:mod:`corral.gateway.process`) uses it as is.
"""

from __future__ import annotations

from dataclasses import dataclass

from corral.audit.log import AuditLog
from corral.config import Settings
from corral.governance.governor import Governor
from corral.governance.ledger import BudgetLedger, LedgerTimings
from corral.store.db import Database
from corral.vault.service import Vault


@dataclass(frozen=True)
class GovernanceCore:
    audit: AuditLog
    governor: Governor


def governance_core(
    settings: Settings,
    db: Database,
    vault: Vault,
    *,
    holder: str,
    check_every: float,
    audit_decisions: bool = True,
) -> GovernanceCore:
    """``holder`` names this process's budget slices and holds (unique per process life);
    ``check_every`` bounds how stale the governance snapshot may get without a notification.
    ``audit_decisions=False`` only for the gateway benchmark's untraced baseline."""
    audit = AuditLog(
        db,
        vault,
        checkpoint_records=settings.audit_checkpoint_records,
        checkpoint_seconds=settings.audit_checkpoint_seconds,
    )
    timings = LedgerTimings(
        hold_ttl=settings.ledger_hold_seconds, durable_grace=settings.ledger_turn_grace_seconds
    )
    governor = Governor(
        db,
        BudgetLedger(db, holder, timings),
        check_every=check_every,
        turn_estimate_usd=settings.turn_estimate_usd,
    )
    if audit_decisions:
        governor.listeners.append(audit.queue.on_decision)
    db.epoch_listeners.append(governor.invalidate)
    return GovernanceCore(audit, governor)
