"""The Flask adapter: a ``SessionInterface`` over the shared session engine."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from flask import Flask, Request, Response, g
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import Headers

from .cookies import CookieSettings, cookie_in, persistent_expiry, session_cookie
from .engine import SessionEngine
from .errors import SessionError, SessionStoreUnavailable
from .login import NEVER_STORED, refuse_remember_cookie, strip_remember_cookie
from .migration import predecessor
from .outages import BODY, STATUS, log_outage, outage_headers
from .session import Predecessor, Session
from .tokens import is_well_formed
from .validation import MAX_DURATION, duration


class RedisSessionInterface(SessionInterface):
    """Keep Flask sessions in Redis; the cookie carries only a random token.

    Flask's cookie settings are read at request time through the inherited
    ``get_cookie_*`` and :meth:`should_set_cookie` methods, so overriding one
    of them in a subclass works as it does for Flask's own interface. So
    does :attr:`session_class`: views get an instance of it.

    Lifetimes follow Flask's by default: a session lives as long as a
    request uses it at least once per ``PERMANENT_SESSION_LIFETIME`` (a
    sliding window), with no absolute cap. ``lifetime`` adds an absolute cap;
    the engine's ``idle_timeout``, when set, is the window instead. With
    ``permanent``, new sessions are permanent (a persistent cookie). With
    ``migrate_from``, sessions of Flask-Session or Flask's cookies are taken
    up (see :mod:`.migration`). With ``flask_login``, Flask-Login's remember
    cookie never leaves (see :mod:`.login`).

    .. versionadded:: 0.1

    .. versionchanged:: 0.2
        ``PERMANENT_SESSION_LIFETIME`` is a sliding window, not an absolute
        lifetime; ``permanent``, ``migrate_from`` and ``flask_login``.
    """

    #: The class of the sessions this interface opens: :class:`Session` or a subclass.
    session_class: type[Session] = Session

    def __init__(
        self,
        engine: SessionEngine,
        lifetime: timedelta | None = None,
        retry_after: int | None = 5,
        permanent: bool = False,
        migrate_from: Sequence[str] = (),
        flask_login: bool = False,
    ) -> None:
        self.engine = engine
        self.lifetime = lifetime
        #: Whether new sessions are permanent: ``SCS_PERMANENT``.
        self.permanent = permanent
        #: The stores whose sessions are taken up: ``SCS_MIGRATE_FROM``.
        self.migrate_from = tuple(migrate_from)
        #: Whether Flask-Login's remember cookie is kept from responses (see :mod:`.login`).
        self.flask_login = flask_login
        #: Seconds a client is asked to wait when the store is down; None lets
        #: :class:`SessionStoreUnavailable` propagate instead of answering 503.
        self.retry_after = retry_after

    def unavailable_response(self, error: SessionStoreUnavailable) -> Response:
        """The 503 answer to a request the store failed: a fresh response.

        It has ``Retry-After``, ``Cache-Control: no-store`` and a short body,
        and nothing of the view's response. The cause is logged as a warning
        on the ``flask_scs_redis`` logger, once per cause and interval.
        """
        log_outage(error)
        response = self._fresh_503()
        g._scs_outage = response  # after_request may add to it; save_session takes that back
        return response

    def _fresh_503(self) -> Response:
        response = Response(BODY, status=STATUS)
        response.headers = Headers(outage_headers(self.retry_after or 0))
        return response

    def get_session_lifetime(self, app: Flask) -> timedelta:
        """The absolute cap on a new session's life: ``lifetime``, else 100 years (none).

        .. versionchanged:: 0.2
            No longer ``PERMANENT_SESSION_LIFETIME``, which is the sliding window.
        """
        return self.lifetime if self.lifetime is not None else MAX_DURATION

    def get_idle_timeout(self, app: Flask) -> timedelta:
        """The sliding window: the engine's ``idle_timeout``, else ``PERMANENT_SESSION_LIFETIME``.

        Read at request time, as Flask reads it.

        :raises ConfigurationError: ``PERMANENT_SESSION_LIFETIME``, changed
            after ``init_app``, cannot work (see :data:`.options.MAX_DURATION`).

        .. versionadded:: 0.2
        """
        if self.engine.idle_timeout is not None:
            return self.engine.idle_timeout
        return duration("PERMANENT_SESSION_LIFETIME", app.permanent_session_lifetime)

    def get_expiration_time(self, app: Flask, session: SessionMixin) -> datetime | None:
        """When a permanent session's cookie expires; None for a browser-session cookie.

        With ``SESSION_REFRESH_EACH_REQUEST``, when the record would, as of
        now; else at the deadline. See :func:`.cookies.persistent_expiry`.
        """
        if not isinstance(session, Session):
            return None
        return persistent_expiry(session, app.config["SESSION_REFRESH_EACH_REQUEST"])

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

        A cookie that is not a well-formed token names no session of ours,
        though it may name one to take up (see :meth:`get_predecessor`).
        """
        name = self.get_cookie_name(app)
        cookie = cookie_in(request.environ.get("HTTP_COOKIE"), name)
        if cookie is not None and not is_well_formed(cookie):
            cookie = request.cookies.get(name)  # decoded, for the stores it may be taken from
        opened = self.engine.open(
            cookie if is_well_formed(cookie) else None,
            predecessor=self.get_predecessor(app, cookie),
            lifetime=self.get_session_lifetime(app),
            idle_timeout=self.get_idle_timeout(app),
            permanent_default=self.permanent,
            session_class=self.session_class,
        )
        if self.flask_login:
            opened.never_stored = NEVER_STORED
            refuse_remember_cookie(app, request)
        return opened

    def get_predecessor(self, app: Flask, cookie: str | None) -> Predecessor | None:
        """The session ``cookie`` may name in the stores of ``migrate_from``; None if none.

        Nothing is read until the store proves not to know the cookie. See
        :mod:`.migration`.

        .. versionadded:: 0.2
        """
        return predecessor(app, cookie, self.migrate_from, self.engine.store.client)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Commit the session and set, refresh or delete the cookie.

        Should the commit fail, the response becomes what the app's error
        handler for that error makes (the 503 for an outage, unless
        ``retry_after`` is None), or the error propagates. Either way the
        commit is not tried again when Flask finalizes its error response.
        """
        assert isinstance(session, Session), "the session was not opened by this interface"
        flags = g._get_current_object()  # once: each lookup through the proxy costs
        if flags.get("_scs_outage") is response:
            _become(response, self._fresh_503())
            return
        if flags.get("_scs_save_failed"):
            return  # Flask's error path: the save failed once, and once is enough
        try:
            outcome = self.engine.commit(session)
        except SessionError as error:
            g._scs_save_failed = True
            if isinstance(error, SessionStoreUnavailable) and self.retry_after is not None:
                _become(response, self.unavailable_response(error))
            else:  # the app's own handler, as for a failure in the view; else it propagates
                _become(response, app.make_response(app.handle_user_exception(error)))
            return
        session_cookie(
            outcome,
            session,
            lambda: self.get_cookie_settings(app),
            lambda session: self.should_set_cookie(app, session),
            lambda session: self.get_expiration_time(app, session),
        ).apply(response.headers)
        if self.flask_login:
            strip_remember_cookie(app, response)


def _become(response: Response, replacement: Response) -> None:
    """Make ``response`` into ``replacement`` in place: status, headers and body.

    ``save_session`` cannot return a new response, and none of the old one's
    headers may survive (its caching, ``ETag``, encoding, other cookies).
    """
    response.status = replacement.status
    response.headers = Headers(replacement.headers)
    response.direct_passthrough = False
    response.set_data(replacement.get_data())
