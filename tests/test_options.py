"""One source of defaults and checks: Options, and what the engine and store take directly."""

from __future__ import annotations

import inspect
from datetime import timedelta
from typing import Any

import pytest
import redis

from flask_scs_redis import (
    ConfigurationError,
    Options,
    RedisStore,
    SessionAdmin,
    SessionEngine,
    SessionMiddleware,
)
from flask_scs_redis.options import MAX_DURATION


@pytest.mark.parametrize(
    ("callable_", "skip"),
    [
        (SessionMiddleware, {"app", "store"}),
        (SessionEngine, {"store", "sealer", "sender"}),
        (RedisStore, {"client"}),
        (RedisStore.from_url, {"url", "client_kwargs"}),
        (SessionAdmin, {"store", "sealer", "sender"}),
    ],
    ids=["middleware", "engine", "store", "store-from-url", "admin"],
)
def test_every_front_end_takes_its_defaults_from_options(callable_: Any, skip: set[str]) -> None:
    parameters = inspect.signature(callable_).parameters
    for name, parameter in parameters.items():
        if name not in skip:
            assert parameter.default == getattr(Options, name), name


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_size": -1}, "max_size must be a whole number above zero"),
        ({"max_size": 0}, "max_size must be a whole number above zero"),
        ({"min_attempts": 0}, "min_attempts must be a whole number above zero"),
        ({"idle_timeout": "soon"}, "idle_timeout must be a timedelta or a number of seconds"),
        ({"idle_timeout": -1}, "idle_timeout must be positive"),
        ({"user_key": 5}, "user_key must be a str"),
        ({"renew_on_login": "yes"}, "renew_on_login must be True or False"),
        ({"max_sessions_per_user": 0}, "max_sessions_per_user must be a whole number above"),
        ({"idle_timeout": timedelta.max}, "idle_timeout must be at most 100 years"),
    ],
)
def test_the_engine_refuses_invalid_arguments_given_directly(
    redis_client: redis.Redis, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SessionEngine(RedisStore(redis_client), **arguments)


def test_the_admin_refuses_an_invalid_user_key(redis_client: redis.Redis) -> None:
    with pytest.raises(ConfigurationError, match="user_key must be a str"):
        SessionAdmin(RedisStore(redis_client), user_key=42)  # type: ignore[arg-type]


def test_the_engine_needs_a_store(redis_client: redis.Redis) -> None:
    with pytest.raises(ConfigurationError, match="store must be a RedisStore"):
        SessionEngine(redis_client)  # type: ignore[arg-type]


def test_the_engine_keeps_what_it_checked(redis_client: redis.Redis) -> None:
    engine = SessionEngine(RedisStore(redis_client), idle_timeout=90, min_attempts=4)
    assert engine.idle_timeout == timedelta(seconds=90)
    assert engine.min_attempts == 4


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"prefix": b"bytes:"}, "prefix must be a str"),
        ({"hash_tokens": "yes"}, "hash_tokens must be True or False"),
        ({"min_replicas": -1}, "min_replicas must be a whole number from zero up"),
        ({"replica_timeout": 0}, "replica_timeout must be positive"),
        ({"replica_timeout": timedelta.max}, "replica_timeout must be at most 100 years"),
    ],
)
def test_the_store_refuses_invalid_arguments_given_directly(
    redis_client: redis.Redis, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RedisStore(redis_client, **arguments)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"timeout": 0}, "timeout must be positive"),
        ({"retries": -1}, "retries must be a whole number from zero up"),
        ({"timeout": timedelta.max}, "timeout must be at most 100 years"),
        ({"timeout": 10**10}, "timeout must be at most 100 years"),
    ],
)
def test_from_url_refuses_invalid_arguments(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RedisStore.from_url("redis://127.0.0.1:1/0", **arguments)


@pytest.mark.parametrize(
    "arguments",
    [{"lifetime": timedelta.max}, {"idle_timeout": timedelta.max}],
    ids=["lifetime", "idle_timeout"],
)
def test_the_middleware_refuses_a_duration_too_long_to_work(
    redis_client: redis.Redis, arguments: dict[str, Any]
) -> None:
    name = next(iter(arguments))
    with pytest.raises(ConfigurationError, match=rf"^{name} must be at most 100 years"):
        SessionMiddleware(lambda environ, start_response: [], RedisStore(redis_client), **arguments)


def test_every_duration_has_the_same_bound_and_the_bound_itself_is_allowed() -> None:
    durations = ["timeout", "replica_timeout", "lifetime", "idle_timeout"]
    assert Options.from_keywords(**dict.fromkeys(durations, MAX_DURATION)).lifetime == MAX_DURATION
    for name in durations:
        with pytest.raises(ConfigurationError, match=f"^{name} must be at most 100 years"):
            Options.from_keywords(**{name: MAX_DURATION + timedelta(microseconds=1)})


def test_options_name_the_setting_as_the_caller_spelled_it() -> None:
    with pytest.raises(ConfigurationError, match=r"^max_size must"):
        Options.from_keywords(max_size=0)
    with pytest.raises(ConfigurationError, match=r"^SCS_MAX_SIZE must"):
        Options.from_config({"SCS_MAX_SIZE": 0})
    with pytest.raises(TypeError, match="cookie_max_age"):
        Options.from_keywords(cookie_max_age=5)


def test_options_from_config_read_only_scs_keys_over_the_defaults() -> None:
    options = Options.from_config({"SCS_IDLE_TIMEOUT": 60, "SESSION_COOKIE_NAME": "other"})
    assert options.idle_timeout == timedelta(seconds=60)
    assert options.cookie_name == Options.cookie_name  # Flask's cookie keys stay Flask's
    # SCS_PERMANENT is False unless set, as Flask's sessions are not permanent by default.
    assert options == Options.from_keywords(idle_timeout=60, cookie_persist=False)
