"""Every option in one place: its default, its check, and its Flask config key.

Both front ends build an :class:`Options`: the Flask extension from the
``SCS_*`` keys of ``app.config`` (:meth:`Options.from_config`), the WSGI
middleware from its keyword arguments (:meth:`Options.from_keywords`). Values
are checked once, when the options are made, and a bad one raises
:class:`~.errors.ConfigurationError` naming the setting as the caller spelled
it. :class:`~.store.RedisStore` and :class:`~.engine.SessionEngine` run the same
checks on arguments given to them directly, through :func:`check`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from datetime import timedelta
from typing import Any

from .errors import ConfigurationError
from .sealing import secrets_from
from .validation import MAX_DURATION as MAX_DURATION
from .validation import (
    Check,
    check_rotation,
    count,
    duration,
    flag,
    grace,
    optional,
    positive_int,
    text,
)

#: The absolute lifetime where no framework sets one (Flask's is its
#: ``PERMANENT_SESSION_LIFETIME``): a day, as in SCS.
DEFAULT_LIFETIME = timedelta(hours=24)

# RFC 6265 cookie-name: an RFC 7230 token.
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SAMESITE = {"strict": "Strict", "lax": "Lax", "none": "None"}
# Flask's lifetime, the sliding window where SCS_IDLE_TIMEOUT is unset.
_FLASK_LIFETIME = "PERMANENT_SESSION_LIFETIME"
# Flask-Session's, honoured where SCS_PERMANENT is unset.
_FLASK_SESSION_PERMANENT = "SESSION_PERMANENT"


class ConfigurationWarning(UserWarning):
    """A config key that nothing reads: a misspelt ``SCS_*`` key, or a Flask-Session leftover.

    Given by ``init_app``; the value of that key has no effect.

    .. versionadded:: 0.2
    """


def _client_or_url(name: str, value: Any) -> Any:
    """Return ``value`` if it is None, a URL, or has a redis-py client's ``execute_command``."""
    if value is not None and not isinstance(value, str) and not hasattr(value, "execute_command"):
        raise ConfigurationError(f"{name} must be a redis-py client or a URL, not {value!r}")
    return value


#: What ``SCS_MIGRATE_FROM`` may name: Flask-Session's records, Flask's signed cookies.
MIGRATION_SOURCES = ("flask-session", "cookie")


def _sources(name: str, value: Any) -> tuple[str, ...]:
    """Return the migration sources ``value`` names (a name, or a list of them), in order."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ConfigurationError(
            f"{name} must be a list of source names such as ['flask-session'], not {value!r}"
        )
    for source in names:
        if source.lower() not in MIGRATION_SOURCES:
            raise ConfigurationError(
                f"{name} names {source!r}; the sources are {', '.join(MIGRATION_SOURCES)}"
            )
    return tuple(dict.fromkeys(source.lower() for source in names))


def _cookie_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _COOKIE_NAME.fullmatch(value):
        raise ConfigurationError(f"{name} must be a cookie token such as 'session', not {value!r}")
    return value


def _cookie_path(name: str, value: Any) -> str:
    if not text(name, value).startswith("/"):
        raise ConfigurationError(f"{name} must start with '/', not {value!r}")
    return str(value)


def _samesite(name: str, value: Any) -> str | None:
    """Return the SameSite value spelled as browsers expect it, or None."""
    spelled = _SAMESITE.get(value.lower()) if isinstance(value, str) else None
    if value is not None and spelled is None:
        raise ConfigurationError(f"{name} must be 'Strict', 'Lax', 'None' or None, not {value!r}")
    return spelled


def _not_empty(name: str, value: Any) -> str:
    if not text(name, value):
        raise ConfigurationError(f"{name} must not be empty")
    return str(value)


def _option(default: Any, check: Check, config: str | None = None) -> Any:
    """A field of :class:`Options`: its default, its check, and its Flask config key."""
    return field(default=default, metadata={"check": check, "config": config})


@dataclass(frozen=True)
class Options:
    """The options of server-side sessions, checked.

    Make them with :meth:`from_keywords` or :meth:`from_config`, which check
    every value; a plain constructor call trusts its arguments.

    .. versionadded:: 0.1
    """

    # Where the sessions are kept (the Flask extension builds the store from these).
    redis_url: str = _option("redis://127.0.0.1:6379/0", text, "SCS_REDIS_URL")
    #: A ready redis-py client, which wins over ``redis_url``; a URL here is
    #: taken as ``redis_url``.
    redis: Any = _option(None, _client_or_url, "SCS_REDIS")
    prefix: str = _option("scs:session:", text, "SCS_KEY_PREFIX")
    hash_tokens: bool = _option(True, flag, "SCS_HASH_TOKENS")
    timeout: timedelta = _option(timedelta(seconds=1), duration, "SCS_REDIS_TIMEOUT")
    retries: int = _option(2, count, "SCS_REDIS_RETRIES")
    min_replicas: int = _option(0, count, "SCS_MIN_REPLICAS")
    replica_timeout: timedelta = _option(timedelta(seconds=0.5), duration, "SCS_REPLICA_TIMEOUT")

    # The session lifecycle.
    #: The absolute cap. None: under Flask, no cap; under the middleware,
    #: :data:`DEFAULT_LIFETIME`.
    lifetime: timedelta | None = _option(None, optional(duration), "SCS_LIFETIME")
    #: The sliding window. None: under Flask, ``PERMANENT_SESSION_LIFETIME``
    #: (read at request time); under the middleware, none.
    idle_timeout: timedelta | None = _option(None, optional(duration), "SCS_IDLE_TIMEOUT")
    max_size: int = _option(65536, positive_int, "SCS_MAX_SIZE")
    #: Attempts a contended save makes at the least before it gives up.
    min_attempts: int = _option(16, positive_int)
    user_key: str | None = _option("_user_id", optional(text), "SCS_USER_KEY")
    renew_on_login: bool = _option(True, flag, "SCS_RENEW_ON_LOGIN")
    max_sessions_per_user: int | None = _option(
        None, optional(positive_int), "SCS_MAX_SESSIONS_PER_USER"
    )
    #: Flask-Login integration (Flask only): see :mod:`.login`.
    flask_login: bool = _option(True, flag, "SCS_FLASK_LOGIN")
    #: A remembered session's own lifetime where login_user gets no duration;
    #: None: Flask-Login's REMEMBER_COOKIE_DURATION.
    remember_lifetime: timedelta | None = _option(None, optional(duration), "SCS_REMEMBER_LIFETIME")
    #: The stores whose sessions a request takes up where ours does not know
    #: its cookie (Flask only): see :data:`MIGRATION_SOURCES`.
    migrate_from: tuple[str, ...] = _option((), _sources, "SCS_MIGRATE_FROM")
    #: Encryption at rest (see :mod:`.sealing`); it needs the ``cryptography`` package.
    encrypt: bool = _option(False, flag, "SCS_ENCRYPT")
    #: The server secrets mixed into encryption at rest: the first seals, all
    #: open. Without ``encrypt`` they only open (see :mod:`.sealing`).
    encryption_keys: tuple[bytes, ...] = _option((), secrets_from, "SCS_ENCRYPTION_KEYS")
    #: Refuse records stored in the clear, once none is left (see :mod:`.sealing`).
    encryption_required: bool = _option(False, flag, "SCS_ENCRYPTION_REQUIRED")
    #: Give a session a new token when its token is this old (see :mod:`.rotation`).
    rotate_every: timedelta | None = _option(None, optional(duration), "SCS_ROTATE_EVERY")
    #: How long a rotated token still opens its session.
    rotate_grace: timedelta = _option(timedelta(seconds=10), grace, "SCS_ROTATE_GRACE")

    # Outages, as the Flask extension answers them.
    retry_after: int = _option(5, positive_int, "SCS_RETRY_AFTER")
    propagate_unavailable: bool = _option(False, flag, "SCS_PROPAGATE_UNAVAILABLE")

    # The cookie under the WSGI middleware (Flask apps use Flask's SESSION_COOKIE_* keys).
    cookie_name: str = _option("session", _cookie_name)
    cookie_domain: str | None = _option(None, optional(text))
    cookie_path: str = _option("/", _cookie_path)
    cookie_secure: bool = _option(False, flag)
    cookie_httponly: bool = _option(True, flag)
    cookie_samesite: str | None = _option("Lax", _samesite)
    cookie_partitioned: bool = _option(False, flag)
    #: Whether new sessions get a cookie that outlives the browser session,
    #: as SCS's ``Persist``. Under Flask it is ``SCS_PERMANENT``, by default
    #: False as in Flask, or Flask-Session's ``SESSION_PERMANENT``.
    cookie_persist: bool = _option(True, flag, "SCS_PERMANENT")
    #: Re-send a persistent cookie on each request that uses the session.
    cookie_refresh_each_request: bool = _option(True, flag)
    environ_key: str = _option("scs.session", _not_empty)

    @classmethod
    def from_keywords(cls, **values: Any) -> Options:
        """Check ``values``, named as keyword arguments, over the defaults.

        :raises TypeError: a name is not an option.
        :raises ConfigurationError: a value is not valid; the message names it.
        """
        unknown = values.keys() - _FIELDS.keys()
        if unknown:
            raise TypeError(f"unexpected keyword argument {sorted(unknown)[0]!r}")
        return cls._checked(values, {name: name for name in values})

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Options:
        """Check the ``SCS_*`` keys of a Flask app's ``config``, over the defaults.

        Without ``SCS_IDLE_TIMEOUT``, Flask's ``PERMANENT_SESSION_LIFETIME`` is
        checked too, as it stands in. ``SCS_PERMANENT`` is False unless set,
        or unless Flask-Session's ``SESSION_PERMANENT`` is. A URL in
        ``SCS_REDIS`` is taken as ``SCS_REDIS_URL``.

        :raises ConfigurationError: a value is not valid; the message names its key.

        .. versionchanged:: 0.2
            ``SCS_REDIS`` takes a URL; ``SCS_PERMANENT``.
        """
        values: dict[str, Any] = {"cookie_persist": False}
        labels = {o.name: o.metadata["config"] for o in _FIELDS.values() if o.metadata["config"]}
        if _FLASK_SESSION_PERMANENT in config:
            values["cookie_persist"] = config[_FLASK_SESSION_PERMANENT]
            labels["cookie_persist"] = _FLASK_SESSION_PERMANENT
        for option in _FIELDS.values():
            key = option.metadata["config"]
            if key is not None and key in config:
                values[option.name], labels[option.name] = config[key], key
        options = cls._checked(values, labels)
        if options.idle_timeout is None and _FLASK_LIFETIME in config:
            duration(_FLASK_LIFETIME, config[_FLASK_LIFETIME])
        return options

    @classmethod
    def _checked(cls, values: Mapping[str, Any], labels: Mapping[str, str]) -> Options:
        checked = {
            name: _FIELDS[name].metadata["check"](labels[name], value)
            for name, value in values.items()
        }
        if isinstance(checked.get("redis"), str):
            if "redis_url" in checked:
                raise ConfigurationError(
                    f"{labels['redis']} is a URL and {labels['redis_url']} is set too: set only one"
                )
            checked["redis_url"] = checked.pop("redis")
        options = cls(**checked)

        def label(name: str) -> str:
            return labels.get(name, name)

        if options.cookie_partitioned and not options.cookie_secure:
            raise ConfigurationError(
                f"{label('cookie_partitioned')}=True needs {label('cookie_secure')}=True"
            )
        if options.encryption_required and not (options.encrypt and options.encryption_keys):
            raise ConfigurationError(
                f"{label('encryption_required')}=True needs {label('encrypt')}=True and"
                f" {label('encryption_keys')}: without a server secret, anyone who can write"
                " to Redis can seal a record for a token of their own"
            )
        check_rotation(
            options.rotate_every,
            options.rotate_grace,
            (label("rotate_every"), label("rotate_grace")),
        )
        if options.cookie_samesite == "None" and not options.cookie_secure:
            raise ConfigurationError(
                f"{label('cookie_samesite')}='None' needs {label('cookie_secure')}=True;"
                " browsers reject it otherwise"
            )
        return options


_FIELDS: dict[str, Field[Any]] = {option.name: option for option in fields(Options)}


def check(name: str, value: Any) -> Any:
    """Check ``value`` as the option ``name``, and name it so in the message.

    :raises ConfigurationError: it is not valid.
    """
    return _FIELDS[name].metadata["check"](name, value)


def opening_only(options: Options, keys: str, encrypt: str) -> str | None:
    """Say so if ``options`` list secrets without encrypting: sealed sessions open, none seal.

    ``keys`` and ``encrypt`` name the two settings as the caller spells them.
    """
    if not options.encryption_keys or options.encrypt:
        return None
    return (
        f"{keys} is set and {encrypt} is not True: sealed sessions are opened, but each"
        " write stores its session in the clear. That is the step for switching encryption"
        " on or off across several processes; see the README's Encryption at rest"
    )


#: The ``SCS_*`` keys of ``app.config`` that :meth:`Options.from_config` reads.
CONFIG_KEYS = frozenset(option.metadata["config"] for option in _FIELDS.values()) - {None}
