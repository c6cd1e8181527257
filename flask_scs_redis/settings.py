"""Checks for configuration values, run once at set-up with clear messages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .errors import ConfigurationError


def duration(name: str, value: Any) -> timedelta:
    """Return ``value`` (a timedelta or a number of seconds) as a positive timedelta.

    :raises ConfigurationError: the value is not a positive, finite duration.
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            result = timedelta(seconds=value)
        except (OverflowError, ValueError):  # inf, nan, or past timedelta's range
            raise ConfigurationError(f"{name} must be a finite duration, not {value!r}") from None
    else:
        raise ConfigurationError(
            f"{name} must be a timedelta or a number of seconds, not {value!r}"
        )
    if result <= timedelta(0):
        raise ConfigurationError(f"{name} must be positive, not {value!r}")
    return result


def optional_duration(name: str, value: Any) -> timedelta | None:
    """As :func:`duration`, but None is allowed and returned as is."""
    return None if value is None else duration(name, value)


def positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an int above zero.

    :raises ConfigurationError: it is not.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigurationError(f"{name} must be a whole number above zero, not {value!r}")
    return value


def count(name: str, value: Any) -> int:
    """Return ``value`` if it is an int from zero up.

    :raises ConfigurationError: it is not.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigurationError(f"{name} must be a whole number from zero up, not {value!r}")
    return value


def flag(name: str, value: Any) -> bool:
    """Return ``value`` if it is True or False.

    :raises ConfigurationError: it is anything else.
    """
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, not {value!r}")
    return value


def text(name: str, value: Any) -> str:
    """Return ``value`` if it is a str.

    :raises ConfigurationError: it is not.
    """
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a str, not {value!r}")
    return value


def optional_text(name: str, value: Any) -> str | None:
    """As :func:`text`, but None is allowed and returned as is."""
    return None if value is None else text(name, value)


def optional_positive_int(name: str, value: Any) -> int | None:
    """As :func:`positive_int`, but None is allowed and returned as is."""
    return None if value is None else positive_int(name, value)


@dataclass(frozen=True)
class FlaskSettings:
    """The ``SCS_*`` keys of a Flask app's config, checked."""

    redis_url: str
    redis_client: Any
    key_prefix: str
    lifetime: timedelta | None
    idle_timeout: timedelta | None
    hash_tokens: bool
    max_size: int
    redis_timeout: timedelta
    redis_retries: int
    retry_after: int
    propagate_unavailable: bool
    min_replicas: int
    replica_timeout: timedelta
    user_key: str | None
    renew_on_login: bool
    max_sessions_per_user: int | None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FlaskSettings:
        """Read and check the ``SCS_*`` keys, with their defaults."""
        return cls(
            redis_url=text(
                "SCS_REDIS_URL", config.get("SCS_REDIS_URL", "redis://127.0.0.1:6379/0")
            ),
            redis_client=config.get("SCS_REDIS"),
            key_prefix=text("SCS_KEY_PREFIX", config.get("SCS_KEY_PREFIX", "scs:session:")),
            # None means Flask's PERMANENT_SESSION_LIFETIME, read at request time.
            lifetime=optional_duration("SCS_LIFETIME", config.get("SCS_LIFETIME")),
            idle_timeout=optional_duration("SCS_IDLE_TIMEOUT", config.get("SCS_IDLE_TIMEOUT")),
            hash_tokens=flag("SCS_HASH_TOKENS", config.get("SCS_HASH_TOKENS", True)),
            max_size=positive_int("SCS_MAX_SIZE", config.get("SCS_MAX_SIZE", 65536)),
            redis_timeout=duration("SCS_REDIS_TIMEOUT", config.get("SCS_REDIS_TIMEOUT", 1.0)),
            redis_retries=count("SCS_REDIS_RETRIES", config.get("SCS_REDIS_RETRIES", 2)),
            retry_after=positive_int("SCS_RETRY_AFTER", config.get("SCS_RETRY_AFTER", 5)),
            propagate_unavailable=flag(
                "SCS_PROPAGATE_UNAVAILABLE", config.get("SCS_PROPAGATE_UNAVAILABLE", False)
            ),
            min_replicas=count("SCS_MIN_REPLICAS", config.get("SCS_MIN_REPLICAS", 0)),
            replica_timeout=duration("SCS_REPLICA_TIMEOUT", config.get("SCS_REPLICA_TIMEOUT", 0.5)),
            user_key=optional_text("SCS_USER_KEY", config.get("SCS_USER_KEY", "_user_id")),
            renew_on_login=flag("SCS_RENEW_ON_LOGIN", config.get("SCS_RENEW_ON_LOGIN", True)),
            max_sessions_per_user=optional_positive_int(
                "SCS_MAX_SESSIONS_PER_USER", config.get("SCS_MAX_SESSIONS_PER_USER")
            ),
        )
