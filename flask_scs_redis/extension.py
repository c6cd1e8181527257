"""The Flask extension object that wires everything from ``app.config``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Flask, current_app, has_request_context
from flask import session as flask_session

from .admin import SessionAdmin, SessionInfo
from .cli import scs_command
from .engine import SessionEngine
from .errors import SessionStoreUnavailable
from .flask_interface import RedisSessionInterface
from .options import Options
from .session import Session
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
        options = Options.from_config(app.config)
        interface = self.interface_class(
            SessionEngine.from_options(_store(options), options),
            lifetime=options.lifetime,
            retry_after=None if options.propagate_unavailable else options.retry_after,
        )
        app.session_interface = interface
        if interface.retry_after is not None:
            app.register_error_handler(SessionStoreUnavailable, interface.unavailable_response)
        app.extensions["scs_redis"] = self
        app.cli.add_command(scs_command)

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

    def admin(self, app: Flask | None = None) -> SessionAdmin:
        """Return a :class:`SessionAdmin` over the sessions of ``app`` (default: current app)."""
        engine = self.interface(app).engine
        return SessionAdmin(engine.store, engine.user_key)

    def user_sessions(self, user: object) -> list[SessionInfo]:
        """Return ``user``'s live sessions, oldest first; ``current`` marks this request's."""
        return self.admin().user_sessions(user, current_id=_current_session_id())

    def destroy_user_sessions(self, user: object, keep_current: bool = False) -> int:
        """End every session of ``user`` ("log out everywhere"); return how many.

        With ``keep_current`` the session of this request survives ("log out
        my other devices").
        """
        keep = _current_session_id() if keep_current else None
        return self.admin().destroy_user_sessions(user, keep_id=keep)

    def destroy(self, session_id: str) -> bool:
        """End the session with the store id ``session_id``; return whether it existed."""
        return self.admin().destroy(session_id)

    def iter_sessions(self) -> Iterator[tuple[SessionInfo, dict[Any, Any]]]:
        """Yield every session with its values (SCAN with pipelined fetches, never KEYS)."""
        return self.admin().iter_sessions()

    def count(self) -> int:
        """Count the stored sessions."""
        return self.admin().count()


def _store(options: Options) -> RedisStore:
    """The store ``options`` name: on the ready client, else on one made from the URL."""
    if options.redis is not None:
        return RedisStore(
            options.redis,
            options.prefix,
            options.hash_tokens,
            min_replicas=options.min_replicas,
            replica_timeout=options.replica_timeout,
        )
    return RedisStore.from_url(
        options.redis_url,
        prefix=options.prefix,
        hash_tokens=options.hash_tokens,
        timeout=options.timeout,
        retries=options.retries,
        min_replicas=options.min_replicas,
        replica_timeout=options.replica_timeout,
    )


def _current_session_id() -> str | None:
    """The store id of this request's session, if there is a request and a stored session."""
    if not has_request_context():
        return None
    current = flask_session._get_current_object()  # type: ignore[attr-defined]
    return current.id if isinstance(current, Session) else None
