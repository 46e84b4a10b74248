"""The sign-in throttle: account lockout, client throttling, windows, unlock, and counts shared by
concurrent workers (sqlite and PostgreSQL, as the application role)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from hearteye_platform.db import create_db_engine, create_session_factory
from hearteye_platform.db.models import SignInThrottle
from hearteye_platform.signin_throttle import (
    SignInLockedError,
    SignInThrottler,
    ThrottlePolicy,
    account_key,
    unlock_account,
)
from tests.identity.conftest import PlatformDb

POLICY = ThrottlePolicy(account_max_failures=3, client_max_failures=5, window_s=60, lockout_s=60)


def throttler(platform_db: PlatformDb, **changes: float) -> SignInThrottler:
    values = {**POLICY.__dict__, **changes}
    return SignInThrottler(platform_db.sessions, ThrottlePolicy(**values))


def failures(platform_db: PlatformDb, key: str) -> int:
    with platform_db.sessions() as session:
        row = session.scalars(select(SignInThrottle).where(SignInThrottle.key == key)).first()
        return 0 if row is None else row.failures


def test_account_locks_after_its_limit_and_names_the_unlock_command(
    platform_db: PlatformDb,
) -> None:
    t = throttler(platform_db)
    for client in ("10.0.0.1", "10.0.0.2"):  # two clients: below the client limit each
        t.check("Alice", client)
        t.failed("Alice", client)
    t.check("alice", "10.0.0.3")
    t.failed("alice", "10.0.0.3")
    with pytest.raises(SignInLockedError, match=r"account 'alice' is locked") as locked:
        t.check("ALICE", "10.9.9.9")  # any client, any case
    assert 55 <= locked.value.retry_after_s <= 60
    assert "ml users unlock alice" in str(locked.value)
    t.check("bob", "10.0.0.1")  # other accounts are not affected
    assert unlock_account(platform_db.sessions, "alice")
    t.check("alice", "10.0.0.1")
    assert not unlock_account(platform_db.sessions, "alice")


def test_client_is_throttled_across_accounts(platform_db: PlatformDb) -> None:
    t = throttler(platform_db)
    for n in range(5):
        t.failed(f"user{n}", "192.0.2.7")
    with pytest.raises(SignInLockedError, match="from this address") as locked:
        t.check("someone-else", "192.0.2.7")
    assert locked.value.retry_after_s >= 55
    t.check("someone-else", "192.0.2.8")
    t.check("user0", None)  # no client address known: the account alone decides


def test_success_clears_the_account_count(platform_db: PlatformDb) -> None:
    t = throttler(platform_db)
    t.failed("carol", "198.51.100.1")
    t.failed("carol", "198.51.100.1")
    t.succeeded("carol")
    assert failures(platform_db, account_key("carol")) == 0
    t.failed("carol", "198.51.100.1")
    t.check("carol", "198.51.100.1")  # 1 failure since the success, not 3


def test_window_and_lockout_expire(platform_db: PlatformDb) -> None:
    t = throttler(platform_db, window_s=0.5, lockout_s=0.5)
    t.failed("dave", None)
    t.failed("dave", None)
    time.sleep(0.6)
    t.failed("dave", None)  # the first two fell out of the window
    t.check("dave", None)
    t.failed("dave", None)
    t.failed("dave", None)
    with pytest.raises(SignInLockedError):
        t.check("dave", None)
    time.sleep(0.6)
    t.check("dave", None)


def test_keys_are_bounded(platform_db: PlatformDb) -> None:
    t = throttler(platform_db)
    t.failed("x" * 5000, "y" * 5000)
    with platform_db.sessions() as session:
        keys = session.scalars(select(SignInThrottle.key)).all()
    assert keys
    assert all(len(key) <= 160 for key in keys)


def test_workers_share_one_count(platform_db: PlatformDb) -> None:
    """Eight workers, each with its own engine, count 80 failures of one account exactly."""
    if platform_db.kind != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL (sqlite serialises the whole file)")
    policy = ThrottlePolicy(
        account_max_failures=1000, client_max_failures=1000, window_s=60, lockout_s=60
    )
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        engine = create_db_engine(platform_db.url, pooled=False)
        try:
            t = SignInThrottler(create_session_factory(engine), policy)
            for _ in range(10):
                t.failed("eve", f"203.0.113.{n}")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert failures(platform_db, account_key("eve")) == 80


def test_expired_rows_are_pruned_by_the_next_failure(platform_db: PlatformDb) -> None:
    t = throttler(platform_db, window_s=0.2, lockout_s=0.2)
    t.failed("old", "10.0.0.1")
    time.sleep(0.3)
    t.failed("new", None)
    with platform_db.sessions() as session:
        assert session.scalars(select(SignInThrottle.key)).all() == ["account:new"]
