"""Users: CRUD, argon2 hashes, authentication, typed errors, the active-user cache."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from hearteye_platform.db import DatabaseUnavailableError
from hearteye_platform.db.models import User
from hearteye_platform.identity import (
    ActiveUserCache,
    DuplicateUserError,
    InvalidCredentialsError,
    InvalidRoleError,
    InvalidUsernameError,
    Role,
    UnknownUserError,
    UserDisabledError,
    UserInfo,
    UserStore,
    WeakPasswordError,
    check_password,
    common_passwords,
)
from tests.identity.conftest import PlatformDb

PASSWORD = "correct horse battery"


@pytest.fixture
def store(platform_db: PlatformDb, fast_hasher: PasswordHasher) -> UserStore:
    return UserStore(platform_db.sessions, hasher=fast_hasher)


def stored_hash(platform_db: PlatformDb, username: str) -> str:
    with platform_db.sessions() as session:
        return session.scalars(select(User.password_hash).where(User.username == username)).one()


def test_add_get_list(store: UserStore) -> None:
    alice = store.add("Alice", "clinician", PASSWORD)
    store.add("bob", Role.ADMIN, PASSWORD + "!")
    assert alice.username == "alice"  # usernames are case-insensitive, stored lower-case
    assert alice.role is Role.CLINICIAN
    assert not alice.disabled
    assert alice.created_at.tzinfo is not None
    assert alice.created_at == alice.updated_at
    assert store.get("ALICE") == alice
    assert [(u.username, u.role) for u in store.list_users()] == [
        ("alice", Role.CLINICIAN),
        ("bob", Role.ADMIN),
    ]
    assert set(alice.to_dict()) == {"username", "role", "disabled", "created_at", "updated_at"}


def test_passwords_are_stored_as_argon2id(platform_db: PlatformDb, store: UserStore) -> None:
    store.add("carol", "clinician", PASSWORD)
    stored = stored_hash(platform_db, "carol")
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_default_hasher_is_argon2id_with_current_parameters(platform_db: PlatformDb) -> None:
    store = UserStore(platform_db.sessions)
    store.add("dave", "admin", PASSWORD)
    assert stored_hash(platform_db, "dave").startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert store.authenticate("dave", PASSWORD).username == "dave"


def test_authenticate(store: UserStore) -> None:
    store.add("erin", "clinician", PASSWORD)
    assert store.authenticate("Erin", PASSWORD).role is Role.CLINICIAN
    with pytest.raises(InvalidCredentialsError):
        store.authenticate("erin", PASSWORD + "x")
    with pytest.raises(InvalidCredentialsError):  # same error: no user enumeration
        store.authenticate("nobody", PASSWORD)


def test_disabled_user_cannot_authenticate(store: UserStore) -> None:
    store.add("frank", "clinician", PASSWORD)
    assert store.disable("frank").disabled
    with pytest.raises(UserDisabledError):
        store.authenticate("frank", PASSWORD)
    with pytest.raises(InvalidCredentialsError):  # disabled status only shown with the password
        store.authenticate("frank", "wrong password!!")
    with pytest.raises(UserDisabledError):
        store.get_active("frank")
    assert not store.enable("frank").disabled
    assert store.get_active("frank").username == "frank"


def test_set_password(store: UserStore) -> None:
    store.add("grace", "admin", PASSWORD)
    before = store.get("grace")
    after = store.set_password("grace", "a brand new passphrase")
    assert after.updated_at >= before.updated_at
    store.authenticate("grace", "a brand new passphrase")
    with pytest.raises(InvalidCredentialsError):
        store.authenticate("grace", PASSWORD)


def test_rehash_on_login_when_parameters_change(platform_db: PlatformDb) -> None:
    old = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    new = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    UserStore(platform_db.sessions, hasher=old).add("heidi", "clinician", PASSWORD)
    assert "m=1024,t=1" in stored_hash(platform_db, "heidi")
    UserStore(platform_db.sessions, hasher=new).authenticate("heidi", PASSWORD)
    rehashed = stored_hash(platform_db, "heidi")
    assert "m=2048,t=2" in rehashed
    new.verify(rehashed, PASSWORD)


@pytest.mark.parametrize(
    ("username", "role", "password", "error"),
    [
        ("ivan", "superuser", PASSWORD, InvalidRoleError),
        ("ivan", "clinician", "", WeakPasswordError),
        ("ivan", "clinician", "            ", WeakPasswordError),
        ("ivan", "clinician", "short", WeakPasswordError),
        ("ivan", "clinician", "x" * 2000, WeakPasswordError),
        ("ivan.the.long", "clinician", "IVAN.THE.LONG", WeakPasswordError),
        ("ivan", "clinician", "my name is IVAN, ok", WeakPasswordError),
        ("ivan", "clinician", "Password1234!", WeakPasswordError),
        ("ivan", "clinician", "1q2w3e4r5t6y", WeakPasswordError),
        ("ivan", "clinician", "zzzzzzzzzzzzzz", WeakPasswordError),
        ("", "clinician", PASSWORD, InvalidUsernameError),
        ("has space", "clinician", PASSWORD, InvalidUsernameError),
        ("x" * 65, "clinician", PASSWORD, InvalidUsernameError),
    ],
)
def test_bad_input_is_refused(
    store: UserStore, username: str, role: str, password: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        store.add(username, role, password)
    assert store.list_users() == []


def test_duplicate_and_unknown_users(store: UserStore) -> None:
    store.add("judy", "clinician", PASSWORD)
    with pytest.raises(DuplicateUserError, match="judy"):
        store.add("JUDY", "admin", PASSWORD)
    for operation in (store.get, store.disable, store.enable):
        with pytest.raises(UnknownUserError, match="mallory"):
            operation("mallory")
    with pytest.raises(UnknownUserError):
        store.set_password("mallory", PASSWORD)
    with pytest.raises(WeakPasswordError):
        store.set_password("judy", "short")


class FlakyStore:
    """A UserStore stand-in whose database can be switched off."""

    def __init__(self, user: UserInfo) -> None:
        self.user = user
        self.down = False
        self.calls = 0

    def get_active(self, username: str) -> UserInfo:
        self.calls += 1
        if self.down:
            raise DatabaseUnavailableError("down")
        if self.user.disabled:
            raise UserDisabledError(username)
        return self.user


def test_active_user_cache(store: UserStore) -> None:
    user = store.add("ken", "clinician", PASSWORD)
    flaky = FlakyStore(user)
    now = [0.0]
    cache = ActiveUserCache(flaky, ttl_s=5, stale_ttl_s=60, clock=lambda: now[0])  # type: ignore[arg-type]
    assert cache.get("ken") == user
    assert cache.get("KEN") == user
    assert flaky.calls == 1  # fresh answer reused
    now[0] = 10.0
    flaky.down = True
    assert cache.get("ken") == user  # database down: last answer, within stale_ttl_s
    now[0] = 100.0
    with pytest.raises(DatabaseUnavailableError):
        cache.get("ken")
    flaky.down = False
    flaky.user = store.disable("ken")
    cache.invalidate("ken")
    with pytest.raises(UserDisabledError):
        cache.get("ken")
    with pytest.raises(UserDisabledError):  # negative answers are cached too
        cache.get("ken")
    assert flaky.calls == 4


def test_unreachable_database_is_a_typed_error(fast_hasher: PasswordHasher) -> None:
    from hearteye_platform.db import create_db_engine, create_session_factory
    from tests.identity.pg import free_port

    engine = create_db_engine(f"postgresql://x@127.0.0.1:{free_port()}/x", connect_timeout_s=1)
    store = UserStore(create_session_factory(engine), hasher=fast_hasher)
    with pytest.raises(DatabaseUnavailableError, match="unavailable"):
        store.authenticate("someone", PASSWORD)
    engine.dispose()


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "shorter than 12 characters"),
        ("quentin-rocks-2026", "contains the username"),
        ("Password1234!", "commonly used passwords"),
        ("!!qwertyuiop99", "commonly used passwords"),
        ("aaaaaaaaaaaaaaa", "one character repeated"),
    ],
)
def test_password_policy_messages(password: str, message: str) -> None:
    with pytest.raises(WeakPasswordError, match=message):
        check_password(password, "quentin")


def test_password_policy_accepts_a_passphrase() -> None:
    check_password("correct horse battery", "quentin")
    check_password("password manager made this: 8fK2", "quentin")  # contains, is not, a common one
    assert "password" in common_passwords()
    assert all(line == line.lower() for line in common_passwords())


def test_password_change_and_disable_raise_the_token_generation(store: UserStore) -> None:
    assert store.add("rita", "clinician", PASSWORD).token_generation == 0
    assert store.set_password("rita", "a brand new passphrase").token_generation == 1
    assert store.disable("rita").token_generation == 2
    assert store.disable("rita").token_generation == 2  # already disabled: no change
    assert store.enable("rita").token_generation == 2  # enabling does not revive old tokens
    assert store.authenticate("rita", "a brand new passphrase").token_generation == 2
    assert "token_generation" not in store.get("rita").to_dict()
