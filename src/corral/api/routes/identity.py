"""Teams, users, API keys and the caller's own identity."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from corral.api.deps import Caller, Svc
from corral.api.schemas.common import PageOut
from corral.api.schemas.identity import (
    Key,
    KeyCreate,
    KeyIssued,
    Me,
    Team,
    TeamCreate,
    User,
    UserCreate,
)
from corral.identity.service import IssuedKey

router = APIRouter(prefix="/v1", tags=["identity"])

Cursor = Query(default=None, max_length=500)
Limit = Query(default=None, ge=1, le=200)


def _issued(issued: IssuedKey) -> KeyIssued:
    return KeyIssued.model_validate(
        {**Key.model_validate(issued.key).model_dump(), "key": issued.plaintext}
    )


@router.get("/me", response_model=Me)
async def me(who: Caller) -> Me:
    return Me.model_validate(who)


@router.post("/teams", response_model=Team, status_code=status.HTTP_201_CREATED)
async def create_team(body: TeamCreate, who: Caller, svc: Svc) -> Team:
    return Team.model_validate(await svc.identity.create_team(who, body.name))


@router.get("/teams", response_model=PageOut[Team])
async def list_teams(
    who: Caller, svc: Svc, cursor: str | None = Cursor, limit: int | None = Limit
) -> PageOut[Team]:
    page = await svc.identity.list_teams(who, cursor, limit)
    return PageOut[Team](
        data=[Team.model_validate(t) for t in page.items], next_cursor=page.next_cursor
    )


@router.get("/teams/{team_id}", response_model=Team)
async def get_team(team_id: str, who: Caller, svc: Svc) -> Team:
    return Team.model_validate(await svc.identity.get_team(who, team_id))


@router.post("/users", response_model=User, status_code=status.HTTP_201_CREATED)
async def create_user(body: UserCreate, who: Caller, svc: Svc) -> User:
    user = await svc.identity.create_user(
        who, name=body.name, email=body.email, team_id=body.team_id, role=body.role
    )
    return User.model_validate(user)


@router.get("/users", response_model=PageOut[User])
async def list_users(
    who: Caller,
    svc: Svc,
    team_id: str | None = Query(default=None, max_length=40),
    cursor: str | None = Cursor,
    limit: int | None = Limit,
) -> PageOut[User]:
    page = await svc.identity.list_users(who, team_id, cursor, limit)
    return PageOut[User](
        data=[User.model_validate(u) for u in page.items], next_cursor=page.next_cursor
    )


@router.get("/users/{user_id}", response_model=User)
async def get_user(user_id: str, who: Caller, svc: Svc) -> User:
    return User.model_validate(await svc.identity.get_user(who, user_id))


@router.post("/keys", response_model=KeyIssued, status_code=status.HTTP_201_CREATED)
async def create_key(body: KeyCreate, who: Caller, svc: Svc) -> KeyIssued:
    issued = await svc.identity.create_key(
        who, name=body.name, user_id=body.user_id, role=body.role, expires_at=body.expires_at
    )
    return _issued(issued)


@router.get("/keys", response_model=PageOut[Key])
async def list_keys(
    who: Caller,
    svc: Svc,
    user_id: str | None = Query(default=None, max_length=40),
    include_revoked: bool = False,
    cursor: str | None = Cursor,
    limit: int | None = Limit,
) -> PageOut[Key]:
    page = await svc.identity.list_keys(
        who, user_id=user_id, include_revoked=include_revoked, cursor=cursor, limit=limit
    )
    return PageOut[Key](
        data=[Key.model_validate(k) for k in page.items], next_cursor=page.next_cursor
    )


@router.get("/keys/{key_id}", response_model=Key)
async def get_key(key_id: str, who: Caller, svc: Svc) -> Key:
    return Key.model_validate(await svc.identity.get_key(who, key_id))


@router.post("/keys/{key_id}/revoke", response_model=Key)
async def revoke_key(key_id: str, who: Caller, svc: Svc) -> Key:
    return Key.model_validate(await svc.identity.revoke_key(who, key_id))


@router.post("/keys/{key_id}/rotate", response_model=KeyIssued, status_code=status.HTTP_201_CREATED)
async def rotate_key(key_id: str, who: Caller, svc: Svc) -> KeyIssued:
    return _issued(await svc.identity.rotate_key(who, key_id))
