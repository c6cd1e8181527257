"""The WSGI adapter: the same sessions for any WSGI application."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from werkzeug.datastructures import Headers
from werkzeug.wsgi import ClosingIterator

from .admin import SessionAdmin
from .cookies import (
    KEEP,
    CookieSettings,
    cookie_in,
    persistent_expiry,
    session_cookie,
)
from .engine import SessionEngine
from .errors import ConfigurationError, SessionError, SessionStoreUnavailable
from .options import DEFAULT_LIFETIME, ConfigurationWarning, Options, opening_only
from .outages import BODY, STATUS, log_outage, outage_headers
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
    ``retry_after``, ``propagate_unavailable``
        While the store is down, a request that uses the session gets a fresh
        503 with ``Retry-After: 5`` (also when the app turned the outage into
        its own 500); with ``propagate_unavailable=True`` the
        :class:`SessionStoreUnavailable` reaches the WSGI server instead.
    ``user_key``, ``renew_on_login``, ``max_sessions_per_user``
        The per-user index, as the Flask keys ``SCS_USER_KEY`` and so on:
        ``"_user_id"``, True, None. Administer it with :meth:`admin`.
    ``encrypt``, ``encryption_keys``, ``encryption_required``
        Encryption at rest, as ``SCS_ENCRYPT``, ``SCS_ENCRYPTION_KEYS`` and
        ``SCS_ENCRYPTION_REQUIRED``: False, no server secrets, False; keys
        without ``encrypt`` only open what is sealed. It needs
        ``flask-scs-redis[encrypt]``.
    ``rotate_every``, ``rotate_grace``
        Token rotation, as ``SCS_ROTATE_EVERY`` and ``SCS_ROTATE_GRACE``: None
        (off) and 10 seconds (see :mod:`.rotation`).

    Its signals (see :mod:`.signals`) are sent with the middleware as sender.

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
        retry_after: int = Options.retry_after,
        propagate_unavailable: bool = Options.propagate_unavailable,
        encrypt: bool = Options.encrypt,
        encryption_keys: Sequence[str | bytes] = Options.encryption_keys,
        encryption_required: bool = Options.encryption_required,
        rotate_every: timedelta | float | None = Options.rotate_every,
        rotate_grace: timedelta | float = Options.rotate_grace,
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
            retry_after=retry_after,
            propagate_unavailable=propagate_unavailable,
            encrypt=encrypt,
            encryption_keys=encryption_keys,
            encryption_required=encryption_required,
            rotate_every=rotate_every,
            rotate_grace=rotate_grace,
        )
        self.engine = SessionEngine.from_options(store, self.options, sender=self)
        opening = opening_only(self.options, "encryption_keys", "encrypt")
        if opening is not None:
            warnings.warn(opening, ConfigurationWarning, stacklevel=2)
        #: Seconds a client is asked to wait when the store is down; None lets
        #: :class:`SessionStoreUnavailable` propagate to the WSGI server instead.
        self.retry_after: int | None = (
            None if self.options.propagate_unavailable else self.options.retry_after
        )
        self.lifetime = self.options.lifetime or DEFAULT_LIFETIME
        self.cookie_settings = CookieSettings.from_options(self.options)
        self._refresh_each_request = self.options.cookie_refresh_each_request

    @property
    def store(self) -> RedisStore:
        """The store the sessions live in."""
        return self.engine.store

    def admin(self) -> SessionAdmin:
        """Return a :class:`SessionAdmin` over this middleware's sessions.

        .. versionadded:: 0.2
        """
        engine = self.engine
        return SessionAdmin(engine.store, engine.user_key, sealer=engine.sealer, sender=self)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Open the request's session, run the app, and commit at ``start_response``."""
        # The header's bytes, as latin-1: a token is ASCII, so no decoding is needed.
        cookie = cookie_in(environ.get("HTTP_COOKIE"), self.options.cookie_name)
        session = self.engine.open(
            cookie if is_well_formed(cookie) else None,
            lifetime=self.lifetime,
            permanent_default=self.options.cookie_persist,
            session_class=self.session_class,
        )
        environ[self.options.environ_key] = session
        exchange = _Exchange(self, session, start_response)
        try:
            body = self.app(environ, exchange.start_response)
        except SessionStoreUnavailable as error:
            if self.retry_after is None:
                raise
            exchange.outage(error, sys.exc_info())
            return [BODY]
        if exchange.replaced:  # the session failed: the 503 goes out instead
            _close(body)
            return [BODY]
        if exchange.started:
            return ClosingIterator(body, exchange.close)
        # A generator that calls start_response at its first step: watch that step.
        return ClosingIterator(exchange.watched(body), exchange.close)

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
        """When a permanent session's cookie expires; None for a browser-session cookie.

        See :func:`.cookies.persistent_expiry`.
        """
        return persistent_expiry(session, self._refresh_each_request)


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
        #: Whether the response became the outage's 503.
        self.replaced = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        session, middleware = self.session, self.middleware
        answers = middleware.retry_after is not None
        try:
            self.outcome = middleware.engine.commit(session)
        except SessionStoreUnavailable as error:
            if not answers:
                raise
            self.outage(error, exc_info if self.started else None)
            return _discard
        failure = session.store_failure
        if answers and failure is not None and status.startswith("5"):
            # The app (a framework's catch-all) made a 500 of the outage.
            self.outage(failure, exc_info)
            return _discard
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

    def outage(self, error: SessionStoreUnavailable, exc_info: OptExcInfo | None) -> None:
        """Start the 503 instead of what the app answers; its body is :data:`.outages.BODY`."""
        log_outage(error)
        self.replaced = self.started = True
        retry_after = self.middleware.retry_after or 0
        self.server_start_response(STATUS, outage_headers(retry_after), exc_info)

    def watched(self, body: Iterable[bytes]) -> Iterator[bytes]:
        """Pass ``body`` on, unless its first step turned the response into the 503."""
        try:
            for chunk in body:
                if self.replaced:
                    break
                yield chunk
        finally:
            _close(body)
        if self.replaced:
            yield BODY

    def close(self) -> None:
        if not self.started or self.replaced:
            return  # the app failed before it answered, or the store did: keep what is stored
        if self.outcome is Outcome.VANISHED:
            return  # ended elsewhere: nothing of this request is written back
        first_used_late = self.outcome is Outcome.UNTOUCHED
        try:
            # A rotation now would give a token the browser never gets.
            outcome = self.middleware.engine.commit(self.session, rotate=False)
        except SessionError as error:
            # The status went out already: say plainly that nothing was saved.
            logger.error("the session changed after start_response and was NOT saved: %s", error)
            raise
        if outcome in (Outcome.CREATED, Outcome.RENEWED, Outcome.ENDED):
            logger.warning(
                "the session was %s after start_response, so the cookie could not be %s:"
                " the browser will not see it; change the session before start_response",
                "ended" if outcome is Outcome.ENDED else "given a new token",
                "deleted" if outcome is Outcome.ENDED else "set",
            )
        elif first_used_late and self.session.accessed:
            logger.warning(
                "the session was first used after start_response, so the response went"
                " out without Vary: Cookie; use the session before start_response"
            )


def _discard(data: bytes) -> None:
    """The ``write`` of a response replaced by the 503: what the app writes is dropped."""


def _close(body: Iterable[bytes]) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()
