"""The WSGI adapter: the same sessions for any WSGI application."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from werkzeug.datastructures import Headers
from werkzeug.sansio.http import parse_cookie
from werkzeug.wsgi import ClosingIterator

from .cookies import (
    KEEP,
    CookieSettings,
    persistent_expiry,
    session_cookie,
)
from .engine import SessionEngine
from .errors import ConfigurationError, SessionError
from .options import DEFAULT_LIFETIME, Options
from .session import Session
from .state import Outcome
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

    Options are checked once, here, by :class:`~.options.Options`, which holds
    their defaults:

    ``lifetime``
        Absolute lifetime, a timedelta or seconds (None: 24 hours).
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
    ``cookie_refresh_each_request``
        Re-send a persistent cookie on each request that uses the session
        (True), as Flask's ``SESSION_REFRESH_EACH_REQUEST``.
    ``environ_key``
        Where the application finds its :class:`Session` (``"scs.session"``).
    ``user_key``, ``renew_on_login``, ``max_sessions_per_user``
        The per-user index, as the Flask keys ``SCS_USER_KEY`` and so on:
        ``"_user_id"``, True, None. Administer it with :class:`SessionAdmin`.

    To change a cookie rule, override :meth:`should_set_cookie` or
    :meth:`get_expiration_time` in a subclass; :attr:`session_class` names
    the class of the sessions the application gets.

    .. versionadded:: 0.1
    """

    #: The class of the sessions this middleware opens: :class:`Session` or a subclass.
    session_class: type[Session] = Session

    def __init__(
        self,
        app: WSGIApplication,
        store: RedisStore,
        *,
        lifetime: timedelta | float | None = Options.lifetime,
        idle_timeout: timedelta | float | None = Options.idle_timeout,
        max_size: int = Options.max_size,
        cookie_name: str = Options.cookie_name,
        cookie_domain: str | None = Options.cookie_domain,
        cookie_path: str = Options.cookie_path,
        cookie_secure: bool = Options.cookie_secure,
        cookie_httponly: bool = Options.cookie_httponly,
        cookie_samesite: str | None = Options.cookie_samesite,
        cookie_partitioned: bool = Options.cookie_partitioned,
        cookie_persist: bool = Options.cookie_persist,
        cookie_refresh_each_request: bool = Options.cookie_refresh_each_request,
        environ_key: str = Options.environ_key,
        user_key: str | None = Options.user_key,
        renew_on_login: bool = Options.renew_on_login,
        max_sessions_per_user: int | None = Options.max_sessions_per_user,
    ) -> None:
        if not callable(app):
            raise ConfigurationError(f"app must be a WSGI callable, not {app!r}")
        if not isinstance(store, RedisStore):
            raise ConfigurationError(f"store must be a RedisStore, not {store!r}")
        self.app = app
        #: The checked options.
        self.options = Options.from_keywords(
            lifetime=lifetime,
            idle_timeout=idle_timeout,
            max_size=max_size,
            cookie_name=cookie_name,
            cookie_domain=cookie_domain,
            cookie_path=cookie_path,
            cookie_secure=cookie_secure,
            cookie_httponly=cookie_httponly,
            cookie_samesite=cookie_samesite,
            cookie_partitioned=cookie_partitioned,
            cookie_persist=cookie_persist,
            cookie_refresh_each_request=cookie_refresh_each_request,
            environ_key=environ_key,
            user_key=user_key,
            renew_on_login=renew_on_login,
            max_sessions_per_user=max_sessions_per_user,
        )
        self.engine = SessionEngine.from_options(store, self.options)
        self.lifetime = self.options.lifetime or DEFAULT_LIFETIME
        self.cookie_settings = CookieSettings.from_options(self.options)
        self._refresh_each_request = self.options.cookie_refresh_each_request

    @property
    def store(self) -> RedisStore:
        """The store the sessions live in."""
        return self.engine.store

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Open the request's session, run the app, and commit at ``start_response``."""
        header = environ.get("HTTP_COOKIE")
        cookie = _cookie_value(header, self.options.cookie_name) if header else None
        session = self.engine.open(
            cookie if is_well_formed(cookie) else None,
            lifetime=self.lifetime,
            permanent_default=self.options.cookie_persist,
            session_class=self.session_class,
        )
        environ[self.options.environ_key] = session
        exchange = _Exchange(self, session, start_response)
        return ClosingIterator(self.app(environ, exchange.start_response), exchange.close)

    def get_cookie_settings(self) -> CookieSettings:
        """The session cookie's name and attributes."""
        return self.cookie_settings

    def should_set_cookie(self, session: Session) -> bool:
        """Whether a live session's cookie is sent: Flask's rule.

        When the session was modified, or when it is permanent and
        ``cookie_refresh_each_request`` is on.
        """
        return session.modified or (session.permanent and self._refresh_each_request)

    def get_expiration_time(self, session: Session) -> datetime | None:
        """When a permanent session's cookie expires; None for a browser-session cookie."""
        return persistent_expiry(session)


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
        self.cookie = KEEP
        self.started = False
        self.outcome = Outcome.UNTOUCHED

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        session, middleware = self.session, self.middleware
        self.outcome = middleware.engine.commit(session)
        cookie = session_cookie(
            self.outcome,
            session,
            middleware.get_cookie_settings,
            middleware.should_set_cookie,
            middleware.get_expiration_time,
        )
        # A second call (an error page after exc_info) replaces the headers,
        # so the cookie of the first call must go out again.
        if cookie.set_cookie is None and self.cookie.set_cookie is not None:
            cookie = self.cookie
        self.cookie = cookie
        self.started = True
        if cookie is KEEP:
            # The session was never used: the app's headers go out as they are.
            return self.server_start_response(status, headers, exc_info)
        response_headers = Headers(headers)
        cookie.apply(response_headers)
        return self.server_start_response(status, response_headers.to_wsgi_list(), exc_info)

    def close(self) -> None:
        if not self.started:
            return  # the app failed before it answered: keep what is stored
        if self.outcome is Outcome.VANISHED:
            return  # ended elsewhere: nothing of this request is written back
        try:
            outcome = self.middleware.engine.commit(self.session)
        except SessionError as error:
            # The status went out already: say plainly that nothing was saved.
            logger.error("the session changed after start_response and was NOT saved: %s", error)
            raise
        if outcome in (Outcome.SAVED, Outcome.CREATED, Outcome.ENDED):
            logger.warning(
                "the session changed after start_response; the change was saved (%s),"
                " but the cookie could not be updated any more",
                outcome.value,
            )
