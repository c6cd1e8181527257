"""The Flask extension object that wires everything from ``app.config``."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from .engine import SessionEngine
from .errors import SessionStoreUnavailable
from .flask_interface import RedisSessionInterface
from .settings import FlaskSettings
from .store import RedisStore


class RedisSessions:
    """Server-side sessions in Redis for a Flask app.

    ::

        sessions = RedisSessions(app)     # or RedisSessions() and init_app(app)
        session["user_id"] = 42           # stored in Redis, not in the cookie

    To change how cookies are handled, subclass :class:`RedisSessionInterface`
    and name it in ``interface_class`` on a subclass of this extension.

    .. versionadded:: 0.1
    """

    #: The session interface that :meth:`init_app` installs.
    interface_class: type[RedisSessionInterface] = RedisSessionInterface

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Check the ``SCS_*`` config and install the session interface on ``app``.

        No connection is made here; the first request that uses a session
        makes it.

        :raises ConfigurationError: a config value is invalid.
        """
        settings = FlaskSettings.from_config(app.config)
        durability: dict[str, Any] = {
            "min_replicas": settings.min_replicas,
            "replica_timeout": settings.replica_timeout.total_seconds(),
        }
        if settings.redis_client is not None:
            store = RedisStore(
                settings.redis_client,
                prefix=settings.key_prefix,
                hash_tokens=settings.hash_tokens,
                **durability,
            )
        else:
            store = RedisStore.from_url(
                settings.redis_url,
                prefix=settings.key_prefix,
                hash_tokens=settings.hash_tokens,
                timeout=settings.redis_timeout.total_seconds(),
                retries=settings.redis_retries,
                **durability,
            )
        engine = SessionEngine(
            store, idle_timeout=settings.idle_timeout, max_size=settings.max_size
        )
        interface = self.interface_class(
            engine,
            lifetime=settings.lifetime,
            retry_after=None if settings.propagate_unavailable else settings.retry_after,
        )
        app.session_interface = interface
        if interface.retry_after is not None:
            app.register_error_handler(SessionStoreUnavailable, interface.unavailable_response)
        app.extensions["scs_redis"] = self

    def interface(self, app: Flask | None = None) -> RedisSessionInterface:
        """Return the session interface of ``app``, by default the current app."""
        target = app if app is not None else current_app
        interface = target.session_interface
        if not isinstance(interface, RedisSessionInterface):
            raise RuntimeError("init_app() has not been called on this app")
        return interface

    def store(self, app: Flask | None = None) -> RedisStore:
        """Return the :class:`RedisStore` of ``app``, by default the current app."""
        return self.interface(app).engine.store
