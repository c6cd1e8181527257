"""A bare WSGI application, with no framework, that keeps its sessions in Redis.

Run it with ``.venv/bin/python examples/wsgi_app.py``. Like ``make demo`` it
uses the Redis at ``SCS_REDIS_URL``, or starts a throwaway one and stops it on
exit. It serves http://127.0.0.1:5001 (``DEMO_PORT`` changes the port).

Point it at the Redis that ``make demo`` printed and the two demos share their
sessions: browsers send a cookie to every port of a host, and both apps keep
the same records under the same key prefix.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from werkzeug.serving import run_simple

from flask_scs_redis import RedisStore, Session, SessionMiddleware

from throwaway_redis import redis_url_or_throwaway

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

PAGE = """<!doctype html>
<title>flask-scs-redis WSGI demo</title>
<h1>flask-scs-redis WSGI demo</h1>
<p>Visits in this session: {visits}</p>
{account}
"""
LOGGED_IN = """<p>Logged in as <b>{user}</b>.</p>
<form method="post" action="/logout"><button>Log out</button></form>"""
LOGGED_OUT = """<form method="post" action="/login">
  <input name="username" placeholder="your name" required> <button>Log in</button>
</form>"""


def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Route three URLs by hand: the counter page, login and logout."""
    session: Session = environ["scs.session"]
    route = (environ["REQUEST_METHOD"], environ.get("PATH_INFO") or "/")

    if route == ("GET", "/"):
        session["visits"] = session.get("visits", 0) + 1
        user = session.get("user")
        account = LOGGED_IN.format(user=html.escape(user)) if user else LOGGED_OUT
        page = PAGE.format(visits=session["visits"], account=account).encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [page]

    if route == ("POST", "/login"):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = parse_qs(environ["wsgi.input"].read(length).decode("utf-8"))
        username = form.get("username", [""])[0].strip()
        if username:
            # A new token on login, so one planted before it (fixation) is worthless.
            session.renew()
            session["user"] = username
        return see_other(start_response)

    if route == ("POST", "/logout"):
        session.destroy()  # the record is gone now, and the cookie goes with the response
        return see_other(start_response)

    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


def see_other(start_response: StartResponse) -> Iterable[bytes]:
    start_response("303 See Other", [("Location", "/"), ("Content-Length", "0")])
    return []


def create_app(redis_url: str | None = None) -> WSGIApplication:
    """Wrap :func:`application` in the session middleware (URL: ``SCS_REDIS_URL``)."""
    store = RedisStore.from_url(redis_url or os.environ["SCS_REDIS_URL"])
    return SessionMiddleware(
        application,
        store,
        lifetime=timedelta(hours=12),
        idle_timeout=timedelta(minutes=30),
    )


def main() -> None:
    with redis_url_or_throwaway() as redis_url:
        port = int(os.environ.get("DEMO_PORT", "5001"))
        run_simple("127.0.0.1", port, create_app(redis_url), threaded=True)


if __name__ == "__main__":
    main()
