"""The Flask app the tests drive: one small view per way of using a session."""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, flash, get_flashed_messages, request, session

from flask_scs_redis import RedisSessions

COOKIE = "session"


def build_app(**config: Any) -> Flask:
    """Return an app with ``RedisSessions`` set up from ``config``."""
    app = Flask(__name__)
    app.config.update({"TESTING": True, **config})
    RedisSessions(app)

    @app.get("/none")
    def untouched() -> str:
        return "ok"

    @app.get("/read")
    def read() -> str:
        return repr(session.get("n"))

    @app.get("/incr")
    def increment() -> str:
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])

    @app.get("/set/<key>/<value>")
    def set_value(key: str, value: str) -> str:
        session[key] = value
        return "ok"

    @app.get("/rewrite")
    def rewrite_same() -> str:
        session["n"] = session.get("n")
        return "ok"

    @app.get("/append/<item>")
    def append(item: str) -> str:
        session["cart"].append(item)  # a nested change, without session.modified
        return "ok"

    @app.get("/cart")
    def cart() -> str:
        session["cart"] = []
        return "ok"

    @app.get("/permanent")
    def permanent() -> str:
        session.permanent = True
        session["n"] = session.get("n", 0)
        return "ok"

    @app.get("/login/<user>")
    def login(user: str) -> str:
        session.renew()
        session["user"] = user
        return "ok"

    @app.get("/renew")
    def renew() -> str:
        session.renew()
        return "ok"

    @app.get("/logout")
    def logout() -> str:
        session.destroy()
        return "ok"

    @app.get("/logout-then-write")
    def logout_then_write() -> str:
        session.destroy()
        session["after"] = True
        return "ok"

    @app.get("/clear")
    def clear() -> str:
        session.clear()
        return "ok"

    @app.get("/deadline")
    def deadline() -> str:
        return session.deadline.isoformat()

    @app.get("/token")
    def token() -> str:
        return repr(session.token)

    @app.get("/flash")
    def add_flash() -> str:
        flash(request.args.get("message", "hello"), request.args.get("category", "message"))
        return "ok"

    @app.get("/flashes")
    def flashes() -> Any:
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
