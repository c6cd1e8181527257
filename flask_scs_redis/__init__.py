"""Server-side sessions in Redis for Flask and any WSGI app.

The cookie carries only a random token; the session's values live in Redis,
encoded with msgpack, under a hash of that token, with a TTL; with
encryption at rest, sealed under a key that only that token gives.
"""

from __future__ import annotations

from .admin import SealedValues, SessionAdmin, SessionInfo
from .checks import CheckResult, check_store
from .engine import SessionEngine
from .errors import (
    ConfigurationError,
    SessionConflictError,
    SessionError,
    SessionStoreError,
    SessionStoreUnavailable,
    SessionTooLargeError,
    UnsupportedValueError,
)
from .extension import RedisSessions
from .flask_interface import RedisSessionInterface
from .middleware import SessionMiddleware
from .options import ConfigurationWarning, Options
from .sealing import Sealer
from .session import Session
from .state import Outcome, Status
from .store import RedisStore

__all__ = [
    "CheckResult",
    "ConfigurationError",
    "ConfigurationWarning",
    "Options",
    "Outcome",
    "RedisSessionInterface",
    "RedisSessions",
    "RedisStore",
    "SealedValues",
    "Sealer",
    "Session",
    "SessionAdmin",
    "SessionConflictError",
    "SessionEngine",
    "SessionError",
    "SessionInfo",
    "SessionMiddleware",
    "SessionStoreError",
    "SessionStoreUnavailable",
    "SessionTooLargeError",
    "Status",
    "UnsupportedValueError",
    "check_store",
]

__version__ = "0.1.0"
