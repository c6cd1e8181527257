"""The Flask extension object that wires everything from ``app.config``."""

from __future__ import annotations

import difflib
import inspect
import os
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Flask, current_app, has_request_context
from flask import session as flask_session

from .admin import SessionAdmin, SessionInfo
from .cli import scs_command
from .engine import SessionEngine
from .errors import ConfigurationError, SessionStoreUnavailable
from .flask_interface import RedisSessionInterface
from .login import FlaskLogin
from .options import CONFIG_KEYS, ConfigurationWarning, Options, check, opening_only
from .session import Session
from .store import RedisStore

# The keys of Flask-Session's backends other than Redis.
_OTHER_BACKENDS_KEYS = """SESSION_MEMCACHED SESSION_CACHELIB SESSION_DYNAMODB
    SESSION_DYNAMODB_TABLE SESSION_FILE_DIR SESSION_FILE_THRESHOLD SESSION_FILE_MODE
    SESSION_MONGODB SESSION_MONGODB_DB SESSION_MONGODB_COLLECT SESSION_SQLALCHEMY
    SESSION_SQLALCHEMY_TABLE SESSION_SQLALCHEMY_SEQUENCE SESSION_SQLALCHEMY_SCHEMA
    SESSION_SQLALCHEMY_BIND_KEY"""

# Flask-Session 0.8's keys (its ``defaults.py``), each with what to do instead.
# Flask's own SESSION_COOKIE_* and SESSION_REFRESH_EACH_REQUEST are honoured,
# and so is SESSION_PERMANENT where SCS_PERMANENT is unset.
_FLASK_SESSION_KEYS = {
    "SESSION_TYPE": "not needed, RedisSessions(app) is the Redis backend",
    "SESSION_REDIS": "use SCS_REDIS (a client or a URL) or SCS_REDIS_URL",
    "SESSION_CLIENT": "use SCS_REDIS (a client or a URL) or SCS_REDIS_URL",
    "SESSION_KEY_PREFIX": "use SCS_KEY_PREFIX (a prefix of its own keeps old and new apart)",
    "SESSION_USE_SIGNER": "not needed, the token is 256 random bits and only its hash is stored",
    "SESSION_ID_LENGTH": "not needed, tokens are 256 bits",
    "SESSION_SERIALIZATION_FORMAT": "not needed, records are always msgpack",
    "SESSION_CLEANUP_N_REQUESTS": "not needed, Redis expires each record by its TTL",
    **dict.fromkeys(
        _OTHER_BACKENDS_KEYS.split(),
        "not used, sessions are kept in Redis only",
    ),
}


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
        makes it. Keys that nothing reads give a :class:`ConfigurationWarning`:
        each ``SCS_*`` key that is no setting, and Flask-Session's, in one.

        :raises ConfigurationError: a config value is invalid, or, migrating
            from Flask-Session, ``SCS_KEY_PREFIX`` would hold its records.

        .. versionchanged:: 0.2
            Warn about keys that nothing reads.
        """
        _warn_about_unread_keys(app.config)
        options = Options.from_config(app.config)
        opening = opening_only(options, "SCS_ENCRYPTION_KEYS", "SCS_ENCRYPT")
        if opening is not None:
            _warn(opening)
        if "flask-session" in options.migrate_from:
            _check_apart_from_flask_session(options.prefix, app.config)
        interface = self.interface_class(
            SessionEngine.from_options(_store(options), options, sender=app),
            lifetime=options.lifetime,
            retry_after=None if options.propagate_unavailable else options.retry_after,
            permanent=options.cookie_persist,
            migrate_from=options.migrate_from,
            flask_login=options.flask_login,
        )
        if options.flask_login:
            FlaskLogin(options.remember_lifetime).install(app)
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
        target = app if app is not None else current_app._get_current_object()  # type: ignore[attr-defined]
        engine = self.interface(target).engine
        return SessionAdmin(engine.store, engine.user_key, sealer=engine.sealer, sender=target)

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


def _warn_about_unread_keys(config: Mapping[str, Any]) -> None:
    """Warn about each ``SCS_*`` key that is no setting, and once about Flask-Session's keys."""
    known = CONFIG_KEYS
    for key in sorted(k for k in config if isinstance(k, str) and k.startswith("SCS_")):
        if key not in known:
            closest = difflib.get_close_matches(key, known, n=1)
            hint = (
                f"; did you mean {closest[0]}?" if closest else " (see the README's Configuration)"
            )
            _warn(f"{key} is not a flask-scs-redis setting{hint}")
    leftovers = [key for key in _FLASK_SESSION_KEYS if key in config]
    if leftovers and not _migrating_from_flask_session(config.get("SCS_MIGRATE_FROM")):
        _warn(
            "flask-scs-redis does not read these Flask-Session keys:"
            + "".join(f"\n  {key}: {_FLASK_SESSION_KEYS[key]}" for key in leftovers)
        )


def _check_apart_from_flask_session(prefix: str, config: Mapping[str, Any]) -> None:
    """Refuse a key prefix under which Flask-Session's records would look like ours.

    Our reads would take them for corrupt records and delete them, and an
    admin's purge would too, before they were taken up.
    """
    theirs = config.get("SESSION_KEY_PREFIX", "session:")
    if isinstance(theirs, str) and theirs.startswith(prefix):
        raise ConfigurationError(
            f"SCS_KEY_PREFIX {prefix!r} would hold Flask-Session's records too (their"
            f" SESSION_KEY_PREFIX is {theirs!r}): give SCS_KEY_PREFIX a prefix of its own,"
            " such as the default 'scs:session:'"
        )


def _migrating_from_flask_session(source: Any) -> bool:
    """Whether ``SCS_MIGRATE_FROM``, read as the option reads it, names Flask-Session.

    An invalid value names nothing here; ``Options.from_config`` refuses it next.
    """
    try:
        return source is not None and "flask-session" in check("migrate_from", source)
    except ConfigurationError:
        return False


def _warn(message: str) -> None:
    """Warn with the app's line as the place: the first frame outside this package."""
    package = os.path.dirname(__file__) + os.sep
    frame, level = inspect.currentframe(), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, ConfigurationWarning, stacklevel=level)
