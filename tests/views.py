"""The apps the tests drive: the same views behind the Flask and the WSGI adapter.

Each view takes the request's session, its query arguments and the store, so
one behavioural suite can run over both adapters and catch any drift.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, abort, flash, get_flashed_messages, request, session
from werkzeug.wrappers import Request, Response

from flask_scs_redis import (
    Options,
    RedisSessionInterface,
    RedisSessions,
    RedisStore,
    Session,
    SessionMiddleware,
)
from flask_scs_redis.options import MAX_DURATION

View = Callable[[Session, Mapping[str, str], RedisStore], str]
VIEWS: dict[str, View] = {}


class Gate:
    """Holds a request after its view ran and before its session is saved."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()


#: Gates by name; a request with ``?hold=name`` waits at that gate.
GATES: dict[str, Gate] = {}


def run(function: View, session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    """Run a view, then wait at the gate its ``hold`` argument names, if any."""
    body = function(session, args, store)
    if "hold" in args:
        gate = GATES[args["hold"]]
        gate.arrived.set()
        if not gate.release.wait(10):
            raise TimeoutError("the gate was never opened")
    return body


def view(path: str) -> Callable[[View], View]:
    def register(function: View) -> View:
        VIEWS[path] = function
        return function

    return register


@view("/none")
def untouched(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    return "ok"


@view("/read")
def read(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    return repr(session.get("n"))


@view("/incr")
def increment(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    session["n"] = session.get("n", 0) + 1
    return str(session["n"])


@view("/set")
def set_value(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    session[args["key"]] = args["value"]
    return "ok"


@view("/delete")
def delete_value(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    del session[args["key"]]
    return "ok"


@view("/rewrite")
def rewrite_same(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    session["n"] = session.get("n")
    return "ok"


@view("/cart")
def new_cart(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    session["cart"] = []
    return "ok"


@view("/append")
def append(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    session["cart"].append(args["item"])  # a nested change, without session.modified
    return "ok"


@view("/permanent")
def permanent(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    session.permanent = True
    session["n"] = session.get("n", 0)
    return "ok"


@view("/login")
def login(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    session.renew()
    session["user"] = args["user"]
    return "ok"


@view("/renew")
def renew(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    session.renew()
    return "ok"


@view("/logout")
def logout(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    session.destroy()
    return "ok"


@view("/logout-then-write")
def logout_then_write(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    session.destroy()
    session["after"] = True
    return "ok"


@view("/destroy-and-look")
def destroy_and_look(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    token = session.token
    assert token is not None
    session.destroy()
    return repr(store.find(store.key_for(token)))


@view("/clear")
def clear(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    session.clear()
    return "ok"


@view("/deadline")
def deadline(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    return session.deadline.isoformat()


@view("/token")
def token(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    return repr(session.token)


@view("/kind")
def kind(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    return session.__class__.__name__  # through Flask's proxy too


@view("/read-then-logout")
def read_then_logout(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    session.get("n")
    session.destroy()
    return "ok"


@view("/unsupported")
def unsupported(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    session["n"] = 99
    session["obj"] = object()
    return "ok"


@view("/expiry")
def set_expiry(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    """Give the session its own lifetime, and its own idle timeout ("none": none) if asked."""
    idle = args.get("idle")
    if idle is None:
        session.set_expiry(float(args["lifetime"]))
    else:
        session.set_expiry(float(args["lifetime"]), None if idle == "none" else float(idle))
    return "ok"


@view("/huge")
def huge(session: Session, args: Mapping[str, str], store: RedisStore) -> str:
    session["blob"] = "x" * int(args["size"])
    return "ok"


FLASK_CONFIG = {
    "lifetime": "SCS_LIFETIME",
    "idle_timeout": "SCS_IDLE_TIMEOUT",
    "max_size": "SCS_MAX_SIZE",
    "prefix": "SCS_KEY_PREFIX",
    "hash_tokens": "SCS_HASH_TOKENS",
    "cookie_name": "SESSION_COOKIE_NAME",
    "cookie_domain": "SESSION_COOKIE_DOMAIN",
    "cookie_path": "SESSION_COOKIE_PATH",
    "cookie_secure": "SESSION_COOKIE_SECURE",
    "cookie_httponly": "SESSION_COOKIE_HTTPONLY",
    "cookie_samesite": "SESSION_COOKIE_SAMESITE",
    "cookie_partitioned": "SESSION_COOKIE_PARTITIONED",
    "user_key": "SCS_USER_KEY",
    "refresh_each_request": "SESSION_REFRESH_EACH_REQUEST",
    "encrypt": "SCS_ENCRYPT",
    "encryption_keys": "SCS_ENCRYPTION_KEYS",
    "encryption_required": "SCS_ENCRYPTION_REQUIRED",
    "max_sessions_per_user": "SCS_MAX_SESSIONS_PER_USER",
    "rotate_every": "SCS_ROTATE_EVERY",
    "rotate_grace": "SCS_ROTATE_GRACE",
}


def build_flask_app(redis_client: Any, **options: Any) -> Flask:
    """Return a Flask app with the shared views, configured from adapter-neutral options.

    ``session_class`` names the class of the sessions, set on the interface.
    """
    session_type = options.pop("session_class", Session)
    config = {FLASK_CONFIG.get(name, name): value for name, value in options.items()}
    app = Flask(__name__)
    if redis_client is not None:
        config.setdefault("SCS_REDIS", redis_client)
    app.config.update({"TESTING": True, **config})

    class Interface(RedisSessionInterface):
        session_class = session_type

    class Sessions(RedisSessions):
        interface_class = Interface

    Sessions(app)
    store = RedisSessions().store(app)

    for path, function in VIEWS.items():

        def run_view(function: View = function) -> str:
            return run(function, session, request.args, store)  # type: ignore[arg-type]

        app.add_url_rule(path, endpoint=path, view_func=run_view)

    @app.get("/mine")
    def my_sessions() -> str:
        user = session.get("_user_id")
        infos = RedisSessions().user_sessions(user) if user is not None else []
        return ",".join(f"{info.id}{'*' if info.current else ''}" for info in infos)

    @app.get("/log-out-others")
    def log_out_others() -> str:
        return str(RedisSessions().destroy_user_sessions(session["_user_id"], keep_current=True))

    @app.get("/log-out-everywhere")
    def log_out_everywhere() -> str:
        return str(RedisSessions().destroy_user_sessions(session["_user_id"]))

    @app.get("/describe")
    def describe() -> str:
        session.description = request.args["as"]  # type: ignore[attr-defined]
        return "ok"

    @app.get("/flash")
    def add_flash() -> str:
        flash(request.args.get("message", "hello"), request.args.get("category", "message"))
        return "ok"

    @app.get("/flashes")
    def flashes() -> str:
        return repr(get_flashed_messages(with_categories=True))

    @app.get("/abort-after-write")
    def abort_after_write() -> str:
        session["before_abort"] = True
        abort(404)

    @app.get("/fail-after-write")
    def fail_after_write() -> str:
        session["before_failure"] = True
        raise RuntimeError("boom")

    return app


def build_wsgi_app(redis_client: Any, **options: Any) -> SessionMiddleware:
    """Return a bare WSGI app with the shared views, wrapped in SessionMiddleware.

    ``session_class`` names the class of the sessions, set on the middleware.
    """
    store = RedisStore(
        redis_client,
        prefix=options.pop("prefix", Options.prefix),
        hash_tokens=options.pop("hash_tokens", Options.hash_tokens),
    )

    def routes(environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        function = VIEWS.get(request.path)
        if function is None:
            response = Response("not found", status=404)
        else:
            response = Response(run(function, environ["scs.session"], request.args, store))
        return response(environ, start_response)

    # Flask's defaults, so the two adapters can be held to the same expectations.
    options.setdefault("cookie_persist", False)
    options.setdefault("cookie_samesite", None)
    # Flask's lifetimes: a sliding window of 31 days, no absolute cap.
    options.setdefault("idle_timeout", 31 * 24 * 3600)
    options.setdefault("lifetime", MAX_DURATION)
    if "refresh_each_request" in options:
        options["cookie_refresh_each_request"] = options.pop("refresh_each_request")
    session_type = options.pop("session_class", Session)

    class Middleware(SessionMiddleware):
        session_class = session_type

    return Middleware(routes, store, **options)
