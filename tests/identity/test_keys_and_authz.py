"""Key format and hashing; the authorization rules."""

from __future__ import annotations

import os

import pytest

from corral.domain.errors import Forbidden, NotFound, Unauthenticated
from corral.domain.roles import Role
from corral.identity import keys
from corral.identity.authz import Action, Principal, authorize, authorize_grant, authorize_key_owner


def test_keys_are_prefixed_random_and_hashed() -> None:
    secret = os.urandom(32)
    a, b = keys.generate(), keys.generate()
    assert a.plaintext.startswith("ck_") and a.plaintext != b.plaintext
    assert keys.prefix_of(a.plaintext) == a.prefix
    digest = keys.hash_key(a.plaintext, secret)
    assert a.plaintext not in digest and keys.matches(a.plaintext, digest, secret)
    assert not keys.matches(b.plaintext, digest, secret)
    assert not keys.matches(a.plaintext, digest, os.urandom(32))


@pytest.mark.parametrize("bad", ["", "ck_", "sk_abc_def", "ck_short_x", "ck_0123456789_", "Bearer"])
def test_malformed_keys_are_unauthenticated(bad: str) -> None:
    with pytest.raises(Unauthenticated):
        keys.prefix_of(bad)


def who(role: Role, team: str | None = "team_a", user: str = "usr_1") -> Principal:
    return Principal("key_1", user, "org_1", team, role)


def test_other_teams_resources_are_not_found_not_forbidden() -> None:
    with pytest.raises(NotFound):
        authorize(who(Role.VIEWER), Action.AGENTS_WRITE, team_id="team_b")
    with pytest.raises(Forbidden):
        authorize(who(Role.VIEWER), Action.AGENTS_WRITE, team_id="team_a")
    authorize(who(Role.DEVELOPER), Action.AGENTS_WRITE, team_id="team_a")
    authorize(who(Role.ADMIN, team=None), Action.AGENTS_WRITE, team_id="team_b")


def test_nobody_grants_above_their_role() -> None:
    authorize_grant(who(Role.TEAM_ADMIN), Role.DEVELOPER)
    with pytest.raises(Forbidden):
        authorize_grant(who(Role.TEAM_ADMIN), Role.ADMIN)


def test_key_owner_rules() -> None:
    authorize_key_owner(who(Role.VIEWER), "usr_1", "team_a")
    with pytest.raises(Forbidden):
        authorize_key_owner(who(Role.DEVELOPER), "usr_2", "team_a")
    with pytest.raises(NotFound):
        authorize_key_owner(who(Role.TEAM_ADMIN), "usr_2", "team_b")
    authorize_key_owner(who(Role.TEAM_ADMIN), "usr_2", "team_a")
