"""Users of the HeartEye API: accounts, roles, argon2 password hashes, authentication.

``clinician`` may predict; ``admin`` may also manage users and read the audit trail. Usernames
are case-insensitive (stored lower-case). Accounts are disabled, never deleted, so the audit
trail keeps naming real accounts.

Every ``UserStore`` method is one transaction of its own. Hashing is deliberately slow
(argon2id, 64 MiB): call ``authenticate`` from a worker thread, never on the event loop.
"""

from __future__ import annotations

import re
import string
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from importlib.resources import files
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hearteye.errors import HeartEyeError
from hearteye_platform.db.engine import transaction
from hearteye_platform.db.errors import DatabaseUnavailableError
from hearteye_platform.db.models import User, utcnow

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")


class Role(StrEnum):
    CLINICIAN = "clinician"
    ADMIN = "admin"


class IdentityError(HeartEyeError):
    """Base class for user-management and authentication errors."""


class UnknownUserError(IdentityError):
    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"no user named {username!r}")


class DuplicateUserError(IdentityError):
    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"a user named {username!r} already exists")


class UserDisabledError(IdentityError):
    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"user {username!r} is disabled")


class InvalidRoleError(IdentityError):
    def __init__(self, role: str) -> None:
        self.role = role
        super().__init__(f"role {role!r} is not one of: {', '.join(r.value for r in Role)}")


class InvalidUsernameError(IdentityError):
    """The username is empty, too long or uses characters outside a-z 0-9 . _ @ -."""


class WeakPasswordError(IdentityError):
    """The password breaks the policy (``check_password``)."""


class InvalidCredentialsError(IdentityError):
    """Unknown user or wrong password (deliberately not saying which)."""

    def __init__(self) -> None:
        super().__init__("invalid username or password")


@dataclass(frozen=True)
class UserInfo:
    """A user as the API and the CLI see it (never the hash)."""

    username: str
    role: Role
    disabled: bool
    created_at: datetime
    updated_at: datetime
    #: Tokens issued under a lower generation are refused (raised by a password change or a
    #: disable).
    token_generation: int = 0

    @classmethod
    def from_row(cls, user: User) -> UserInfo:
        return cls(
            user.username,
            Role(user.role),
            user.disabled,
            user.created_at,
            user.updated_at,
            user.token_generation or 0,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: role as its value, times as ISO 8601 UTC."""
        data = asdict(self)
        del data["token_generation"]
        data["role"] = self.role.value
        data["created_at"] = self.created_at.isoformat()
        data["updated_at"] = self.updated_at.isoformat()
        return data


def default_password_hasher() -> PasswordHasher:
    """argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile: t=3, 64 MiB, p=4)."""
    return PasswordHasher()


def normalise_username(username: str) -> str:
    """Lower-case ``username`` and check it, or raise ``InvalidUsernameError``."""
    name = username.lower()
    if not USERNAME_PATTERN.fullmatch(name):
        raise InvalidUsernameError(
            f"username {username!r}: use 1-64 characters from a-z 0-9 . _ @ -, "
            "starting with a letter or digit"
        )
    return name


def parse_role(role: str | Role) -> Role:
    """The ``Role`` for ``role``, or ``InvalidRoleError``."""
    try:
        return Role(role)
    except ValueError:
        raise InvalidRoleError(str(role)) from None


@cache
def common_passwords() -> frozenset[str]:
    """The passwords refused as too common (``common_passwords.txt``, lower-case, one a line)."""
    text = files("hearteye_platform").joinpath("common_passwords.txt").read_text()
    lines = (line.strip() for line in text.splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def check_password(password: str, username: str, *, min_length: int = MIN_PASSWORD_LENGTH) -> None:
    """Raise ``WeakPasswordError`` unless ``password`` is acceptable for ``username``: the one
    password policy (``ml users add``, ``ml users set-password`` and the store itself).

    At least ``min_length`` characters (not all blank) and at most ``MAX_PASSWORD_LENGTH``; not
    containing the username; not a well-known password (nor one with digits or symbols merely
    added around it); not one character repeated.
    """
    if not password or not password.strip():
        raise WeakPasswordError("the password is empty")
    if len(password) < min_length:
        raise WeakPasswordError(f"the password is shorter than {min_length} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPasswordError(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")
    lowered = password.lower()
    if username and username.lower() in lowered:
        raise WeakPasswordError("the password contains the username")
    if len(set(lowered)) == 1:
        raise WeakPasswordError("the password is one character repeated")
    core = lowered.strip(string.digits + string.punctuation + string.whitespace)
    if lowered in common_passwords() or core in common_passwords():
        raise WeakPasswordError(
            "the password is in the list of commonly used passwords: choose another"
        )


class UserStore:
    """User accounts in the platform database."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        hasher: PasswordHasher | None = None,
        min_password_length: int = MIN_PASSWORD_LENGTH,
    ) -> None:
        self._sessions = sessions
        self._hasher = hasher or default_password_hasher()
        self._min_password_length = min_password_length
        self._dummy_hash: str | None = None

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The session factory of the platform database this store uses."""
        return self._sessions

    def _transaction(self) -> AbstractContextManager[Session]:
        return transaction(self._sessions)

    @staticmethod
    def _find(session: Session, username: str) -> User | None:
        return session.scalars(select(User).where(User.username == username.lower())).first()

    def _require(self, session: Session, username: str) -> User:
        user = self._find(session, username)
        if user is None:
            raise UnknownUserError(username)
        return user

    def add(self, username: str, role: str | Role, password: str) -> UserInfo:
        """Create an enabled account; ``DuplicateUserError`` if the name is taken."""
        name = normalise_username(username)
        parsed_role = parse_role(role)
        check_password(password, name, min_length=self._min_password_length)
        password_hash = self._hasher.hash(password)
        try:
            with self._transaction() as session:
                if self._find(session, name) is not None:
                    raise DuplicateUserError(name)
                now = utcnow()
                user = User(
                    username=name,
                    role=parsed_role.value,
                    password_hash=password_hash,
                    created_at=now,
                    updated_at=now,
                )
                session.add(user)
                session.flush()
                return UserInfo.from_row(user)
        except IntegrityError as exc:  # lost a race with a concurrent add
            raise DuplicateUserError(name) from exc

    def get(self, username: str) -> UserInfo:
        with self._transaction() as session:
            return UserInfo.from_row(self._require(session, username))

    def list_users(self, *, include_disabled: bool = True) -> list[UserInfo]:
        """Every account, by username."""
        query = select(User).order_by(User.username)
        if not include_disabled:
            query = query.where(User.disabled.is_(False))
        with self._transaction() as session:
            return [UserInfo.from_row(user) for user in session.scalars(query)]

    def _set_disabled(self, username: str, disabled: bool) -> UserInfo:
        with self._transaction() as session:
            user = self._require(session, username)
            if user.disabled != disabled:
                user.disabled = disabled
                if disabled:  # its tokens stay refused after a later enable
                    user.token_generation = (user.token_generation or 0) + 1
                session.flush()
            return UserInfo.from_row(user)

    def disable(self, username: str) -> UserInfo:
        """Disable an account: no new tokens, and existing tokens stop working (for good: its
        token generation goes up, so enabling it again does not revive them)."""
        return self._set_disabled(username, True)

    def enable(self, username: str) -> UserInfo:
        return self._set_disabled(username, False)

    def set_password(self, username: str, password: str) -> UserInfo:
        """Replace the password (checked against the policy first); every token issued before
        stops working."""
        name = username.lower()
        check_password(password, name, min_length=self._min_password_length)
        password_hash = self._hasher.hash(password)
        with self._transaction() as session:
            user = self._require(session, name)
            user.password_hash = password_hash
            user.token_generation = (user.token_generation or 0) + 1
            session.flush()
            return UserInfo.from_row(user)

    def authenticate(self, username: str, password: str) -> UserInfo:
        """The user if ``password`` is right and the account enabled.

        Raises ``InvalidCredentialsError`` for an unknown user or a wrong password (same cost
        either way) and ``UserDisabledError`` for a disabled account with the right password.
        Rehashes the password when the hasher's parameters changed since it was stored.
        """
        with self._transaction() as session:
            user = self._find(session, username)
            if user is None:
                self._burn_time(password)
                raise InvalidCredentialsError()
            try:
                self._hasher.verify(user.password_hash, password)
            except (VerificationError, InvalidHashError):
                raise InvalidCredentialsError() from None
            if user.disabled:
                raise UserDisabledError(user.username)
            if self._hasher.check_needs_rehash(user.password_hash):
                user.password_hash = self._hasher.hash(password)
                session.flush()
            return UserInfo.from_row(user)

    def get_active(self, username: str) -> UserInfo:
        """The user behind a token: ``UnknownUserError`` or ``UserDisabledError`` if unusable."""
        user = self.get(username)
        if user.disabled:
            raise UserDisabledError(user.username)
        return user

    def _burn_time(self, password: str) -> None:
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash("not-a-real-password-0000")
        with suppress(VerificationError):
            self._hasher.verify(self._dummy_hash, password)


@dataclass
class _Cached:
    at: float
    user: UserInfo | None
    error: type[UnknownUserError | UserDisabledError] | None = None


class ActiveUserCache:
    """Per-process cache of "is this token's user still enabled, and with which role".

    A fresh answer is reused for ``ttl_s`` (so a disabled account stops working within that
    time, and at once in the process that disabled it if it calls ``invalidate``). While the
    database is unreachable, the last answer keeps being used for up to ``stale_ttl_s``, so
    predictions go on during an outage; after that ``DatabaseUnavailableError`` is raised.
    """

    def __init__(
        self,
        store: UserStore,
        *,
        ttl_s: float = 5.0,
        stale_ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._stale_ttl_s = stale_ttl_s
        self._clock = clock
        self._entries: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def get(self, username: str) -> UserInfo:
        """The enabled user, or ``UnknownUserError`` / ``UserDisabledError``."""
        name = username.lower()
        now = self._clock()
        with self._lock:
            entry = self._entries.get(name)
        if entry is not None and now - entry.at < self._ttl_s:
            return self._answer(name, entry)
        try:
            user = self._store.get_active(name)
        except (UnknownUserError, UserDisabledError) as exc:
            self._remember(name, _Cached(now, None, type(exc)))
            raise
        except DatabaseUnavailableError:
            if entry is not None and now - entry.at < self._stale_ttl_s:
                return self._answer(name, entry)
            raise
        self._remember(name, _Cached(now, user))
        return user

    def invalidate(self, username: str | None = None) -> None:
        """Forget one user (after disabling them) or everyone."""
        with self._lock:
            if username is None:
                self._entries.clear()
            else:
                self._entries.pop(username.lower(), None)

    def _remember(self, name: str, entry: _Cached) -> None:
        with self._lock:
            self._entries[name] = entry

    @staticmethod
    def _answer(name: str, entry: _Cached) -> UserInfo:
        if entry.error is not None:
            raise entry.error(name)
        assert entry.user is not None
        return entry.user
