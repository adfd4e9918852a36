"""Every change an operator can make, one async function each, called alike by the admin API,
the CLI and the scheduler. Each writes its audit entry in the same database transaction as the
change (issuer.storage.sql.SqlStorage.transaction), naming the Actor who made it.

Each area takes only the collaborators it uses (ClientOps, UserOps, KeyOps, SessionOps, ConsentOps);
``Operations`` bundles them for callers that hold them all. The hosted pages' changes (consent,
sign-out) go through them too.
"""

from __future__ import annotations

from dataclasses import dataclass

from issuer.operations.actor import SCHEDULER, Actor
from issuer.operations.audit import AuditLog
from issuer.operations.clients import ClientOps
from issuer.operations.consents import ConsentOps
from issuer.operations.keys import KeyOps
from issuer.operations.sessions import SessionOps
from issuer.operations.users import UserOps

__all__ = ["SCHEDULER", "Actor", "AuditLog", "ClientOps", "ConsentOps", "KeyOps", "Operations", "SessionOps", "UserOps"]


@dataclass(frozen=True)
class Operations:
    clients: ClientOps
    users: UserOps
    keys: KeyOps
    audit: AuditLog
    sessions: SessionOps
    consents: ConsentOps
