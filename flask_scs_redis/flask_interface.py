"""The Flask adapter: a ``SessionInterface`` over the shared session engine."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.exceptions import ServiceUnavailable

from .cookies import CookieSettings, persistent_expiry, session_cookie
from .engine import SessionEngine
from .errors import SessionStoreUnavailable
from .session import Session
from .tokens import is_well_formed

logger = logging.getLogger("flask_scs_redis")


class RedisSessionInterface(SessionInterface):
    """Keep Flask sessions in Redis; the cookie carries only a random token.

    Flask's cookie settings are read at request time through the inherited
    ``get_cookie_*`` and :meth:`should_set_cookie` methods, so overriding one
    of them in a subclass works as it does for Flask's own interface. So
    does :attr:`session_class`: views get an instance of it.

    ``lifetime`` is the absolute lifetime of a session; None uses the app's
    ``PERMANENT_SESSION_LIFETIME``.

    .. versionadded:: 0.1
    """

    #: The class of the sessions this interface opens: :class:`Session` or a subclass.
    session_class: type[Session] = Session

    def __init__(
        self,
        engine: SessionEngine,
        lifetime: timedelta | None = None,
        retry_after: int | None = 5,
    ) -> None:
        self.engine = engine
        self.lifetime = lifetime
        #: Seconds a client is asked to wait when the store is down; None lets
        #: :class:`SessionStoreUnavailable` propagate instead of answering 503.
        self.retry_after = retry_after

    def unavailable_response(self, error: SessionStoreUnavailable) -> Response:
        """The 503 answer, with ``Retry-After``, to a request the store failed.

        The cause is logged as a warning on the ``flask_scs_redis`` logger.
        """
        logger.warning("session store unavailable, answering 503: %s", error)
        unavailable = ServiceUnavailable(
            "Sessions are unavailable for a moment. Please try again shortly.",
            retry_after=self.retry_after,
        )
        return unavailable.get_response()  # type: ignore[return-value]

    def get_session_lifetime(self, app: Flask) -> timedelta:
        """The absolute lifetime of new sessions."""
        return self.lifetime if self.lifetime is not None else app.permanent_session_lifetime

    def get_expiration_time(self, app: Flask, session: SessionMixin) -> datetime | None:
        """When a permanent session's cookie expires: the deadline, or sooner when idle.

        Non-permanent sessions get a browser-session cookie (None).
        """
        return persistent_expiry(session) if isinstance(session, Session) else None

    def get_cookie_settings(self, app: Flask) -> CookieSettings:
        """The session cookie's name and attributes, from the ``get_cookie_*`` methods."""
        return CookieSettings(
            self.get_cookie_name(app),
            self.get_cookie_domain(app),
            self.get_cookie_path(app),
            self.get_cookie_secure(app),
            self.get_cookie_httponly(app),
            self.get_cookie_samesite(app),
            self.get_cookie_partitioned(app),
        )

    def open_session(self, app: Flask, request: Request) -> Session:
        """Make the request's session from its cookie, without reading Redis yet.

        A cookie that is not a well-formed token is ignored.
        """
        cookie = request.cookies.get(self.get_cookie_name(app))
        return self.engine.open(
            cookie if is_well_formed(cookie) else None,
            lifetime=self.get_session_lifetime(app),
            session_class=self.session_class,
        )

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Commit the session and set, refresh or delete the cookie."""
        assert isinstance(session, Session), "the session was not opened by this interface"
        try:
            outcome = self.engine.commit(session)
        except SessionStoreUnavailable as error:
            if self.retry_after is None:
                raise
            # Too late for an error handler: turn the response itself into a 503.
            unavailable = self.unavailable_response(error)
            response.status = unavailable.status
            response.headers.update(unavailable.headers)
            response.set_data(unavailable.get_data())
            return
        session_cookie(
            outcome,
            session,
            lambda: self.get_cookie_settings(app),
            lambda session: self.should_set_cookie(app, session),
            lambda session: self.get_expiration_time(app, session),
        ).apply(response.headers)
