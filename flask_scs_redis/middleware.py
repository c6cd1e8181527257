"""The WSGI adapter: the same sessions for any WSGI application."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import Headers
from werkzeug.http import dump_cookie
from werkzeug.sansio.http import parse_cookie
from werkzeug.wsgi import ClosingIterator

from . import cookies, settings
from .engine import LIVE_OUTCOMES, Outcome, SessionEngine
from .errors import ConfigurationError
from .session import Session
from .store import RedisStore
from .tokens import is_well_formed

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger("flask_scs_redis")


class SessionMiddleware:
    """Give any WSGI application server-side sessions in Redis.

    ::

        store = RedisStore.from_url("redis://127.0.0.1:6379/0")
        app = SessionMiddleware(app, store, idle_timeout=1800)
        # in the app: session = environ["scs.session"]; session["user"] = "alice"

    The session is committed when the application calls ``start_response``,
    so the cookie goes out with the headers. A change made later, while the
    body is being sent, is still saved when the body is closed, but the
    cookie can no longer change; a warning is logged once for that request.

    Options, checked once here:

    ``lifetime``
        Absolute lifetime, a timedelta or seconds (24 hours).
    ``idle_timeout``
        End a session unused this long (None: never).
    ``max_size``
        Largest encoded record in bytes (65536).
    ``cookie_name``, ``cookie_domain``, ``cookie_path``
        ``"session"``, None, ``"/"``.
    ``cookie_secure``, ``cookie_httponly``, ``cookie_samesite``, ``cookie_partitioned``
        False, True, ``"Lax"``, False.
    ``cookie_persist``
        Whether the cookie outlives the browser session (True), as SCS's
        ``Persist``; a session overrides it by setting ``session.permanent``.
    ``environ_key``
        Where the application finds its :class:`Session` (``"scs.session"``).
    ``user_key``, ``renew_on_login``, ``max_sessions_per_user``
        The per-user index, as the Flask keys ``SCS_USER_KEY`` and so on:
        ``"_user_id"``, True, None. Administer it with :class:`SessionAdmin`.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        app: WSGIApplication,
        store: RedisStore,
        *,
        lifetime: timedelta | float = timedelta(hours=24),
        idle_timeout: timedelta | float | None = None,
        max_size: int = 65536,
        cookie_name: str = "session",
        cookie_domain: str | None = None,
        cookie_path: str = "/",
        cookie_secure: bool = False,
        cookie_httponly: bool = True,
        cookie_samesite: str | None = "Lax",
        cookie_partitioned: bool = False,
        cookie_persist: bool = True,
        environ_key: str = "scs.session",
        user_key: str | None = "_user_id",
        renew_on_login: bool = True,
        max_sessions_per_user: int | None = None,
    ) -> None:
        if not callable(app):
            raise ConfigurationError(f"app must be a WSGI callable, not {app!r}")
        if not isinstance(store, RedisStore):
            raise ConfigurationError(f"store must be a RedisStore, not {store!r}")
        if cookie_domain is not None:
            settings.text("cookie_domain", cookie_domain)
        if not settings.text("cookie_path", cookie_path).startswith("/"):
            raise ConfigurationError(f"cookie_path must start with '/', not {cookie_path!r}")
        secure = settings.flag("cookie_secure", cookie_secure)
        if settings.flag("cookie_partitioned", cookie_partitioned) and not secure:
            raise ConfigurationError("cookie_partitioned=True needs cookie_secure=True")
        if not settings.text("environ_key", environ_key):
            raise ConfigurationError("environ_key must not be empty")
        self.app = app
        self.lifetime = settings.duration("lifetime", lifetime)
        self.engine = SessionEngine(
            store,
            idle_timeout=settings.optional_duration("idle_timeout", idle_timeout),
            max_size=settings.positive_int("max_size", max_size),
            user_key=settings.optional_text("user_key", user_key),
            renew_on_login=settings.flag("renew_on_login", renew_on_login),
            max_sessions_per_user=settings.optional_positive_int(
                "max_sessions_per_user", max_sessions_per_user
            ),
        )
        self.cookie_name = cookies.cookie_name(cookie_name)
        self.cookie_persist = settings.flag("cookie_persist", cookie_persist)
        self.environ_key = environ_key
        self._cookie_attributes: dict[str, Any] = {
            "domain": cookie_domain,
            "path": cookie_path,
            "secure": secure,
            "httponly": settings.flag("cookie_httponly", cookie_httponly),
            "samesite": cookies.samesite(cookie_samesite, secure=secure),
            "partitioned": cookie_partitioned,
        }

    @property
    def store(self) -> RedisStore:
        """The store the sessions live in."""
        return self.engine.store

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Open the request's session, run the app, and commit at ``start_response``."""
        header = environ.get("HTTP_COOKIE")
        cookie = _cookie_value(header, self.cookie_name) if header else None
        session = self.engine.open(
            cookie if is_well_formed(cookie) else None,
            lifetime=self.lifetime,
            permanent_default=self.cookie_persist,
        )
        environ[self.environ_key] = session
        exchange = _Exchange(self, session, start_response)
        return ClosingIterator(self.app(environ, exchange.start_response), exchange.close)

    def cookie_headers(self, session: Session, outcome: Outcome) -> list[tuple[str, str]]:
        """Return the headers that a commit with ``outcome`` calls for."""
        if outcome is Outcome.ENDED:
            deleted = dump_cookie(
                self.cookie_name, "", max_age=0, expires=0, **self._cookie_attributes
            )
            return [("Set-Cookie", deleted)]
        if outcome in LIVE_OUTCOMES and (session.modified or session.permanent):
            expires = session.expires if session.permanent else None
            value = dump_cookie(
                self.cookie_name,
                session.token or "",
                max_age=cookies.max_age_until(expires),
                expires=expires,
                **self._cookie_attributes,
            )
            return [("Set-Cookie", value)]
        return []


def _cookie_value(header: str, name: str) -> str | None:
    # The environ holds the header's bytes as latin-1; a cookie that is not
    # UTF-8 must not fail the request (werkzeug.http.parse_cookie would raise).
    text = header.encode("latin-1", "replace").decode("utf-8", "replace")
    return parse_cookie(text).get(name)


class _Exchange:
    """One request's passage through the middleware."""

    def __init__(
        self, middleware: SessionMiddleware, session: Session, start_response: StartResponse
    ) -> None:
        self.middleware = middleware
        self.session = session
        self.server_start_response = start_response
        self.cookie_headers: list[tuple[str, str]] = []
        self.started = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        session = self.session
        outcome = self.middleware.engine.commit(session)
        # A second call (an error page after exc_info) replaces the headers,
        # so the cookie of the first call must go out again.
        self.cookie_headers = (
            self.middleware.cookie_headers(session, outcome) or self.cookie_headers
        )
        self.started = True
        if not (self.cookie_headers or session.accessed):
            # The session was never used: the app's headers go out as they are.
            return self.server_start_response(status, headers, exc_info)
        response_headers = Headers(headers)
        for name, value in self.cookie_headers:
            response_headers.add(name, value)
        if self.cookie_headers:
            response_headers["Cache-Control"] = cookies.no_cache_set_cookie(
                response_headers.get("Cache-Control")
            )
        cookies.vary_on_cookie(response_headers)
        return self.server_start_response(status, response_headers.to_wsgi_list(), exc_info)

    def close(self) -> None:
        if not self.started:
            return  # the app failed before it answered: keep what is stored
        outcome = self.middleware.engine.commit(self.session)
        if outcome not in (Outcome.UNTOUCHED, Outcome.EMPTY, Outcome.UNCHANGED):
            logger.warning(
                "the session changed after start_response; the change was saved (%s),"
                " but the cookie could not be updated any more",
                outcome.value,
            )
