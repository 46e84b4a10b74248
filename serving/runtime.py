"""Everything one app instance holds at run time (``app.state.runtime``).

Built empty by ``create_app`` and filled by the lifespan (after Gunicorn forked the worker), so
nothing is opened, loaded or connected at import or at app construction.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from hearteye_platform.audit import AuditWriter
from hearteye_platform.auth_tokens import (
    ExpiredTokenError,
    SigningKeys,
    TokenClaims,
    verify_access_token,
)
from hearteye_platform.identity import ActiveUserCache, UserInfo, UserStore
from hearteye_platform.sessions import RevokedTokens
from hearteye_platform.signin_throttle import SignInThrottler
from serving.batcher import MicroBatcher
from serving.context import ClientResolver
from serving.drift import DriftMonitor
from serving.metrics import ServingMetrics
from serving.settings import ServingSettings
from serving.store import ModelStore
from serving.webhooks import DeliveryLedger, WakeNotes

if TYPE_CHECKING:
    from serving.analysis_worker import AnalysisWorkers
    from serving.recording_service import RecordingService

#: Verified tokens remembered per worker (the signature check is skipped for these).
VERIFIED_TOKENS_KEPT = 4096


@dataclass
class Runtime:
    """Settings, metrics and the services the lifespan starts."""

    settings: ServingSettings
    metrics: ServingMetrics
    clients: ClientResolver
    started_monotonic: float = field(default_factory=time.monotonic)
    store: ModelStore | None = None
    batchers: dict[str, MicroBatcher] = field(default_factory=dict)
    drift: DriftMonitor | None = None
    jwt_keys: SigningKeys | None = None
    webhook_secret: str | None = None  # None: registry webhooks are refused (polling only)
    wake: WakeNotes | None = None
    deliveries: DeliveryLedger | None = None
    engine: Engine | None = None
    sessions: sessionmaker[Session] | None = None
    users: UserStore | None = None
    active_users: ActiveUserCache | None = None
    revoked: RevokedTokens | None = None
    signin: SignInThrottler | None = None
    audit: AuditWriter | None = None
    database_error: str | None = None
    recordings: RecordingService | None = None
    analysis_workers: AnalysisWorkers | None = None
    database_checked_at: float = 0.0
    _recent_users: dict[str, tuple[float, UserInfo]] = field(default_factory=dict)
    _verified: OrderedDict[str, TokenClaims] = field(default_factory=OrderedDict)

    @property
    def jwt_secret(self) -> str | None:
        """The current signing secret (new tokens are signed with it)."""
        return self.jwt_keys.current if self.jwt_keys is not None else None

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic

    def verify_token(self, token: str | None) -> TokenClaims:
        """The claims of a valid token; a token verified before is only re-checked for expiry.

        Raises :class:`~hearteye_platform.auth_tokens.TokenError` (401) like ``verify_access_token``.
        """
        if token:
            claims = self._verified.get(token)
            if claims is not None:
                if claims.expires_at > datetime.now(UTC):
                    return claims
                self._verified.pop(token, None)
                raise ExpiredTokenError("the token has expired: request a new one")
        if self.jwt_keys is None:
            raise RuntimeError("no signing secret (lifespan not run)")
        settings = self.settings
        claims = verify_access_token(
            token,
            secret=self.jwt_keys,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
        assert token is not None
        self._verified[token] = claims
        if len(self._verified) > VERIFIED_TOKENS_KEPT:
            self._verified.popitem(last=False)
        return claims

    def recent_user(self, username: str) -> UserInfo | None:
        """The user as looked up less than ``user_cache_ttl_s`` ago in this worker, else None."""
        entry = self._recent_users.get(username.lower())
        if entry is None or time.monotonic() - entry[0] >= self.settings.user_cache_ttl_s:
            return None
        return entry[1]

    def remember_user(self, username: str, user: UserInfo) -> None:
        self._recent_users[username.lower()] = (time.monotonic(), user)

    def require_store(self) -> ModelStore:
        if self.store is None:
            raise RuntimeError("the model store is not started (lifespan not run)")
        return self.store

    def require_recordings(self) -> RecordingService:
        if self.recordings is None:
            raise RuntimeError("the recordings service is not started (lifespan not run)")
        return self.recordings
