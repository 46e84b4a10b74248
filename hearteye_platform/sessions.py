"""Browser sessions: the CSRF token bound to a session, and the list of revoked session tokens.

A session is a :data:`~hearteye_platform.auth_tokens.SESSION_KIND` JWT carried by an HttpOnly
cookie. Signing out adds its ``jti`` to ``revoked_tokens`` (until the token would have expired
anyway), and every request presenting it is checked against that table, so a sign-out is
effective at once in every worker.

The CSRF token is ``HMAC-SHA256(secret, "hearteye-csrf:" + jti)``: bound to one session, nothing
to store, unknowable to another site (it never sees the cookie's value nor the secret). The page
receives it in the body of the sign-in and "who am I" answers and sends it back as
``X-CSRF-Token`` on every unsafe request.
"""

from __future__ import annotations

import hashlib
import hmac
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hearteye_platform.db.engine import transaction
from hearteye_platform.db.models import RevokedToken, utcnow

#: The request header that carries the CSRF token.
CSRF_HEADER = "X-CSRF-Token"
#: Methods that change nothing: no CSRF token needed.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CSRF_LABEL = b"hearteye-csrf:"


def csrf_token(secret: str, token_id: str) -> str:
    """The CSRF token of the session whose ``jti`` is ``token_id``."""
    return hmac.new(secret.encode(), _CSRF_LABEL + token_id.encode(), hashlib.sha256).hexdigest()


def csrf_matches(secret: str, token_id: str, presented: str | None) -> bool:
    """Whether ``presented`` is that session's CSRF token (constant-time comparison)."""
    if not presented:
        return False
    return hmac.compare_digest(csrf_token(secret, token_id), presented.strip())


class RevokedTokens:
    """The ``revoked_tokens`` table: ``revoke`` at sign-out, ``is_revoked`` on every request."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def _transaction(self) -> AbstractContextManager[Session]:
        return transaction(self._sessions)

    def revoke(self, token_id: str, username: str, expires_at: datetime) -> None:
        """Refuse this token from now on; also forget revocations whose tokens have expired."""
        now = utcnow()
        try:
            with self._transaction() as session:
                session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))
                if session.get(RevokedToken, token_id) is None:
                    session.add(
                        RevokedToken(
                            jti=token_id, username=username, expires_at=expires_at, revoked_at=now
                        )
                    )
        except IntegrityError:  # revoked concurrently (two sign-outs at once): already done
            pass

    def is_revoked(self, token_id: str) -> bool:
        with self._transaction() as session:
            found = session.scalar(select(RevokedToken.jti).where(RevokedToken.jti == token_id))
            return found is not None
