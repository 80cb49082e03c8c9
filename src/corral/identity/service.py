"""Identity operations: bootstrap, authentication, teams, users and keys."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from corral.audit.log import AuditLog
from corral.audit.record import AuditEntry, entry
from corral.domain.errors import InvalidRequest, NotFound, Unauthenticated
from corral.domain.ids import new_id
from corral.domain.records import ApiKey, Org, Page, Session, Team, User
from corral.domain.roles import Role, at_least
from corral.identity import keys as keygen
from corral.identity.authz import (
    Action,
    Principal,
    authorize,
    authorize_grant,
    authorize_key_owner,
    authorize_org_scope,
    visible_team,
)
from corral.store import governance as governance_repo
from corral.store import identity as repo
from corral.store.db import Database
from corral.store.pagination import clamp_limit
from corral.store.types import utcnow

#: last_used_at is a hint, not an audit record: write it at most this often per key.
_TOUCH_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKey
    plaintext: str


@dataclass(frozen=True, slots=True)
class Bootstrap:
    org: Org
    admin: User
    key: IssuedKey | None  # None when the org already existed


class IdentityService:
    def __init__(self, db: Database, hash_key: bytes, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit
        self._hash_key = hash_key
        self._touched: dict[str, float] = {}

    # -- bootstrap and authentication ---------------------------------------------------

    async def bootstrap(self, org_name: str, admin_email: str) -> Bootstrap:
        """Create the org and its first admin key once; later calls return the existing org."""
        async with self._db.write() as conn:
            existing = await repo.first_org(conn)
            if existing is not None:
                admins = await repo.list_users(
                    conn, existing.id, team_id=None, cursor=None, limit=200
                )
                admin = next(u for u in admins.items if u.role is Role.ADMIN)
                return Bootstrap(existing, admin, None)
            now = utcnow()
            org = Org(id=new_id("org"), name=org_name, created_at=now)
            await repo.insert_org(conn, org)
            admin = User(new_id("user"), org.id, None, "Admin", admin_email, Role.ADMIN, now)
            await repo.insert_user(conn, admin)
            issued = await self._issue(conn, admin, "bootstrap", Role.ADMIN, None, None)
            await self._audit.append_many(conn, [
                entry("org.create", ("org", org.id), actor=None, org_id=org.id,
                      details={"name": org_name}),
                entry("user.create", ("user", admin.id), actor=None, org_id=org.id,
                      details={"email": admin_email, "role": Role.ADMIN}),
                _key_entry(None, issued.key),
            ])  # fmt: skip
            return Bootstrap(org, admin, issued)

    async def authenticate(self, plaintext: str) -> Principal:
        prefix = keygen.prefix_of(plaintext)
        async with self._db.read() as conn:
            key, epoch = await repo.get_key_and_epoch(conn, prefix)
        if key is None or not keygen.matches(plaintext, key.hash, self._hash_key):
            raise Unauthenticated("API key is not valid")
        now = utcnow()
        # The key's identity rides along (never shown to the caller) for the audit record.
        owner = {"key_id": key.id, "user_id": key.user_id, "org_id": key.org_id,
                 "team_id": key.team_id, "role": key.role}  # fmt: skip
        if key.revoked_at is not None:
            raise Unauthenticated("API key was revoked", code="key_revoked", **owner)
        if key.expires_at is not None and key.expires_at <= now:
            raise Unauthenticated("API key has expired", code="key_expired", **owner)
        await self._touch(key.id, now)
        return Principal(key.id, key.user_id, key.org_id, key.team_id, key.role, epoch)

    async def _touch(self, key_id: str, now: datetime) -> None:
        last = self._touched.get(key_id, 0.0)
        if time.monotonic() - last < _TOUCH_EVERY:
            return
        self._touched[key_id] = time.monotonic()
        async with self._db.write() as conn:
            await repo.touch_key(conn, key_id, now)

    # -- teams and users ----------------------------------------------------------------

    async def create_team(self, who: Principal, name: str) -> Team:
        authorize_org_scope(who, Action.TEAMS_WRITE)
        team = Team(new_id("team"), who.org_id, name, utcnow())
        async with self._db.write() as conn:
            await repo.insert_team(conn, team)
            await self._audit.append(conn, entry(
                "team.create", ("team", team.id), actor=who, org_id=who.org_id, team_id=team.id,
                details={"name": name},
            ))  # fmt: skip
        return team

    async def get_team(self, who: Principal, team_id: str) -> Team:
        async with self._db.read() as conn:
            team = await repo.get_team(conn, team_id)
        if team is None or team.org_id != who.org_id:
            raise NotFound(f"team {team_id} not found")
        authorize(who, Action.TEAMS_READ, team_id=team.id)
        return team

    async def list_teams(self, who: Principal, cursor: str | None, limit: int | None) -> Page[Team]:
        authorize(who, Action.TEAMS_READ)
        team = visible_team(who)
        async with self._db.read() as conn:
            return await repo.list_teams(
                conn, who.org_id, team_id=team, cursor=cursor, limit=clamp_limit(limit)
            )

    async def create_user(
        self, who: Principal, *, name: str, email: str, team_id: str | None, role: Role
    ) -> User:
        if team_id is None:
            authorize_org_scope(who, Action.USERS_WRITE)
            if role is not Role.ADMIN:
                raise InvalidRequest(
                    "only admins may be created without a team", code="team_required"
                )
        else:
            await self.get_team(who, team_id)
            authorize(who, Action.USERS_WRITE, team_id=team_id)
        authorize_grant(who, role)
        user = User(new_id("user"), who.org_id, team_id, name, email, role, utcnow())
        async with self._db.write() as conn:
            await repo.insert_user(conn, user)
            await self._audit.append(conn, entry(
                "user.create", ("user", user.id), actor=who, org_id=who.org_id, team_id=team_id,
                details={"name": name, "email": email, "role": role},
            ))  # fmt: skip
        return user

    async def get_user(self, who: Principal, user_id: str) -> User:
        async with self._db.read() as conn:
            user = await repo.get_user(conn, user_id)
        if user is None or user.org_id != who.org_id:
            raise NotFound(f"user {user_id} not found")
        if user.id != who.user_id:
            authorize(who, Action.USERS_READ, team_id=user.team_id or "")
        return user

    async def list_users(
        self, who: Principal, team_id: str | None, cursor: str | None, limit: int | None
    ) -> Page[User]:
        authorize(who, Action.USERS_READ)
        scope = visible_team(who)
        if team_id is not None and scope is not None and team_id != scope:
            return Page([], None)
        async with self._db.read() as conn:
            return await repo.list_users(
                conn, who.org_id, team_id=team_id or scope, cursor=cursor, limit=clamp_limit(limit)
            )

    # -- keys ---------------------------------------------------------------------------

    async def create_key(
        self,
        who: Principal,
        *,
        name: str,
        user_id: str | None,
        role: Role | None,
        expires_at: datetime | None,
    ) -> IssuedKey:
        owner = await self.get_user(who, user_id or who.user_id)
        authorize(who, Action.KEYS_WRITE)
        authorize_key_owner(who, owner.id, owner.team_id)
        granted = role or owner.role
        authorize_grant(who, granted)
        authorize_grant(Principal("", owner.id, owner.org_id, owner.team_id, owner.role), granted)
        if expires_at is not None and expires_at <= utcnow():
            raise InvalidRequest("expires_at must be in the future", code="expired")
        async with self._db.write() as conn:
            issued = await self._issue(conn, owner, name, granted, expires_at, None)
            await self._audit.append(conn, _key_entry(who, issued.key))
        return issued

    async def issue_session_key(
        self, who: Principal, session: Session, lifetime: timedelta
    ) -> IssuedKey:
        """A short-lived key for one session's model calls through the gateway.

        Every call made with it is attributed to the session, its agent, team and owner, and
        counts against their budgets. The caller must be allowed to write to the session
        (checked by the caller); the key has the developer role at most.
        """
        async with self._db.write() as conn:
            owner = await repo.get_user(conn, session.user_id or who.user_id)
            if owner is None:
                raise NotFound("the session's owner no longer exists")
            role = Role.DEVELOPER if at_least(owner.role, Role.DEVELOPER) else owner.role
            issued = await self._issue(
                conn, owner, f"gateway {session.id}", role, utcnow() + lifetime, None,
                session_id=session.id, agent_id=session.agent_id,
            )  # fmt: skip
            await self._audit.append(conn, _key_entry(who, issued.key))
        return issued

    async def _issue(
        self,
        conn: AsyncConnection,
        owner: User,
        name: str,
        role: Role,
        expires_at: datetime | None,
        rotated_from: str | None,
        *,
        session_id: str | None = None,
        agent_id: str | None = None,
    ) -> IssuedKey:
        fresh = keygen.generate()
        key = ApiKey(
            id=new_id("key"),
            org_id=owner.org_id,
            user_id=owner.id,
            team_id=owner.team_id,
            name=name,
            role=role,
            prefix=fresh.prefix,
            hash=keygen.hash_key(fresh.plaintext, self._hash_key),
            created_at=utcnow(),
            last_used_at=None,
            expires_at=expires_at,
            revoked_at=None,
            rotated_from=rotated_from,
            session_id=session_id,
            agent_id=agent_id,
        )
        await repo.insert_key(conn, key)
        return IssuedKey(key, fresh.plaintext)

    async def _owned_key(self, who: Principal, key_id: str) -> ApiKey:
        async with self._db.read() as conn:
            key = await repo.get_key(conn, key_id)
        if key is None or key.org_id != who.org_id:
            raise NotFound(f"key {key_id} not found")
        authorize_key_owner(who, key.user_id, key.team_id)
        return key

    async def get_key(self, who: Principal, key_id: str) -> ApiKey:
        return await self._owned_key(who, key_id)

    async def list_keys(
        self,
        who: Principal,
        *,
        user_id: str | None,
        include_revoked: bool,
        cursor: str | None,
        limit: int | None,
    ) -> Page[ApiKey]:
        authorize(who, Action.KEYS_READ)
        team = visible_team(who)
        if who.role in (Role.DEVELOPER, Role.VIEWER):
            user_id = who.user_id
        async with self._db.read() as conn:
            return await repo.list_keys(
                conn,
                who.org_id,
                team_id=team,
                user_id=user_id,
                include_revoked=include_revoked,
                cursor=cursor,
                limit=clamp_limit(limit),
            )

    async def revoke_key(self, who: Principal, key_id: str) -> ApiKey:
        await self._owned_key(who, key_id)
        async with self._db.write() as conn:
            await repo.revoke_key(conn, key_id, utcnow())
            await governance_repo.bump_epoch(conn)
            key = await repo.get_key(conn, key_id)
            assert key is not None
            await self._audit.append(conn, entry(
                "key.revoke", ("key", key_id), actor=who, org_id=who.org_id, team_id=key.team_id,
                details={"owner": key.user_id},
            ))  # fmt: skip
        return key

    async def rotate_key(self, who: Principal, key_id: str) -> IssuedKey:
        """Issue a successor with the same owner, role and expiry; the old key stops at once."""
        old = await self._owned_key(who, key_id)
        if old.revoked_at is not None:
            raise InvalidRequest("a revoked key cannot be rotated", code="key_revoked")
        async with self._db.write() as conn:
            owner = await repo.get_user(conn, old.user_id)
            assert owner is not None
            issued = await self._issue(conn, owner, old.name, old.role, old.expires_at, old.id)
            await repo.revoke_key(conn, old.id, utcnow())
            await governance_repo.bump_epoch(conn)
            await self._audit.append(conn, entry(
                "key.rotate", ("key", old.id), actor=who, org_id=who.org_id, team_id=old.team_id,
                details={"owner": old.user_id, "successor": issued.key.id},
            ))  # fmt: skip
        return issued


def _key_entry(who: Principal | None, key: ApiKey) -> AuditEntry:
    return entry(
        "key.create", ("key", key.id), actor=who, org_id=key.org_id, team_id=key.team_id,
        details={"name": key.name, "owner": key.user_id, "role": key.role,
                 "expires_at": key.expires_at, "session_id": key.session_id},
    )  # fmt: skip
