"""Sign-in throttling and account lockout, shared by every worker through the platform database.

Failed sign-ins are counted per account (``account:NAME``, unknown names included, so probing
them costs the same) and per client address (``client:ADDR``). When one of them reaches its limit
within the window, it is locked for ``lockout_s``: every sign-in it is part of is refused, the
right password included, *before* the password is hashed, so an attack costs one indexed read per
try. A successful sign-in clears its account's count; an admin clears a lock with
``ml users unlock NAME``. Expired rows are pruned by the next failure.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hearteye.errors import HeartEyeError
from hearteye_platform.db.engine import transaction
from hearteye_platform.db.models import SignInThrottle, utcnow

#: Longest account or client part of a key (usernames are at most 64 characters).
MAX_KEY_PART = 128


@dataclass(frozen=True)
class ThrottlePolicy:
    """Limits of one deployment (``HEARTEYE_SIGNIN_*``, serving/settings.py)."""

    account_max_failures: int
    client_max_failures: int
    window_s: float
    lockout_s: float


class SignInLockedError(HeartEyeError):
    """A sign-in refused before checking the password: its account or client is locked."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


def account_key(username: str) -> str:
    return "account:" + username.strip().lower()[:MAX_KEY_PART]


def client_key(client: str) -> str:
    return "client:" + client[:MAX_KEY_PART]


class SignInThrottler:
    """``check`` before hashing, ``failed`` after a wrong password, ``succeeded`` after a right one."""

    def __init__(self, sessions: sessionmaker[Session], policy: ThrottlePolicy) -> None:
        self._sessions = sessions
        self.policy = policy

    def _transaction(self) -> AbstractContextManager[Session]:
        return transaction(self._sessions)

    def _keys(self, username: str, client: str | None) -> list[str]:
        keys = [account_key(username)]
        if client:
            keys.append(client_key(client))
        return sorted(keys)  # one lock order for every transaction: no deadlock

    def check(self, username: str, client: str | None) -> None:
        """Raise ``SignInLockedError`` (with the seconds to wait) if the account or client is
        locked."""
        keys = self._keys(username, client)
        now = utcnow()
        with self._transaction() as session:
            rows = session.scalars(
                select(SignInThrottle).where(
                    SignInThrottle.key.in_(keys), SignInThrottle.locked_until > now
                )
            ).all()
        if not rows:
            return
        row = max(rows, key=lambda r: r.locked_until or now)
        assert row.locked_until is not None
        wait = max(1, math.ceil((row.locked_until - now).total_seconds()))
        kind, _, name = row.key.partition(":")
        if kind == "account":
            message = (
                f"account {name!r} is locked after too many failed sign-ins: try again in "
                f"{wait} s, or ask an admin to unlock it (ml users unlock {name})"
            )
        else:
            message = f"too many failed sign-ins from this address: try again in {wait} s"
        raise SignInLockedError(message, wait)

    def failed(self, username: str, client: str | None) -> None:
        """Count a wrong password (or unknown user) against the account and the client."""
        try:
            self._count(username, client)
        except IntegrityError:  # another worker inserted the same key first: count again
            self._count(username, client)
        self._prune()

    def _count(self, username: str, client: str | None) -> None:
        policy = self.policy
        now = utcnow()
        window = timedelta(seconds=policy.window_s)
        lockout = timedelta(seconds=policy.lockout_s)
        with self._transaction() as session:  # locks only its keys, in one order: no deadlock
            for key in self._keys(username, client):
                limit = (
                    policy.account_max_failures
                    if key.startswith("account:")
                    else policy.client_max_failures
                )
                row = session.get(SignInThrottle, key, with_for_update=True)
                if row is None:
                    row = SignInThrottle(key=key, failures=0, window_started_at=now)
                    session.add(row)
                if row.window_started_at <= now - window:
                    row.failures, row.window_started_at = 0, now
                row.failures += 1
                if row.failures >= limit:  # locked: the next window starts when the lock ends
                    row.locked_until = now + lockout
                    row.failures, row.window_started_at = 0, row.locked_until
                row.expires_at = max(row.window_started_at + window, row.locked_until or now)
                session.flush()

    def _prune(self) -> None:
        """Delete expired rows, skipping any another transaction holds (never waits)."""
        now = utcnow()
        with self._transaction() as session:
            expired = (
                select(SignInThrottle.key)
                .where(SignInThrottle.expires_at < now)
                .with_for_update(skip_locked=True)
            )
            session.execute(delete(SignInThrottle).where(SignInThrottle.key.in_(expired)))

    def succeeded(self, username: str) -> None:
        """Forget the account's failures (its lock, if any, was checked before)."""
        unlock_account(self._sessions, username)


def unlock_account(sessions: sessionmaker[Session], username: str) -> bool:
    """Clear the account's lock and failures (``ml users unlock``); whether there was any."""
    with transaction(sessions) as session:
        result = session.execute(
            delete(SignInThrottle).where(SignInThrottle.key == account_key(username))
        )
        return bool(getattr(result, "rowcount", 0))
