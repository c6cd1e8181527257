"""Flask-Login on server-side sessions: logging out ends the session, and remember-me is it.

Flask-Login keeps its user in the session (``_user_id``), which this library
stores server-side and can end; but on its own it also sets a signed
``remember_token`` cookie that signs the user back in, and that no server can
revoke. So with the integration (on by default, ``SCS_FLASK_LOGIN``):

- ``logout_user()`` ends the session: its record is deleted and its cookie
  removed, whichever comes first of it and ``session.destroy()``;
- ``login_user(user, remember=True)`` makes the session itself the
  remember-me: permanent, with the ``duration`` given to ``login_user``, else
  ``SCS_REMEMBER_LIFETIME``, else Flask-Login's ``REMEMBER_COOKIE_DURATION``
  as its own lifetime and no idle timeout, so "log out everywhere" ends it
  like any other session; a login without remember undoes that, and strong
  session protection ends a remembered session used from elsewhere;
- Flask-Login's ``remember_token`` cookie is never set, and one that a
  browser still sends from before the switch is refused and deleted: there
  is no telling whether that device was logged out everywhere since.

Flask-Login is found at request time, so a ``LoginManager`` set up before or
after ``init_app`` is served alike, and an app without one sees no change.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask, Request, Response, g, session
from werkzeug.datastructures import ImmutableMultiDict

from .session import Session

try:
    from flask_login import signals as _signals
except ImportError:  # Flask-Login is optional: without it there is nothing to integrate
    _signals = None

#: The session value that marks a remembered session.
REMEMBERED = "_scs_remembered"

#: What the integration never lets reach a record: Flask-Login's order to set
#: or clear its cookie, which its ``after_request`` pops, and asks after on
#: every request (see :attr:`.session.Session.never_stored`).
NEVER_STORED = frozenset({"_remember"})

#: Flask-Login's defaults, which its config keys override.
REMEMBER_COOKIE = "remember_token"
REMEMBER_LIFETIME = timedelta(days=365)


class FlaskLogin:
    """The integration for one app; ``remember_lifetime`` None: Flask-Login's duration."""

    def __init__(self, remember_lifetime: timedelta | None = None) -> None:
        self.remember_lifetime = remember_lifetime

    def install(self, app: Flask) -> None:
        """Listen to Flask-Login's signals for ``app``, and refuse old remember cookies."""
        if _signals is None:
            return
        _signals.user_logged_in.connect(self._logged_in, sender=app, weak=False)
        _signals.user_logged_out.connect(self._logged_out, sender=app, weak=False)
        _signals.session_protected.connect(self._protected, sender=app, weak=False)

    def _logged_in(self, app: Flask, **_: Any) -> None:
        """Turn Flask-Login's remember-me into a long-lived session, or undo an earlier one."""
        current = _our_session()
        if current is None:
            return
        if current.get("_remember") != "set":
            if current.pop(REMEMBERED, False):  # another login in a remembered session
                current.pop("_permanent", None)
                current.set_expiry(None)
            return
        del current["_remember"]  # so Flask-Login signs no cookie of its own (SECRET_KEY)
        seconds = current.pop("_remember_seconds", None)
        lifetime = timedelta(seconds=seconds) if seconds else self._lifetime(app)
        current[REMEMBERED] = True
        current.permanent = True
        current.set_expiry(lifetime, idle_timeout=None)

    @staticmethod
    def _protected(app: Flask, **_: Any) -> None:
        """Under strong protection, end a remembered session used from elsewhere.

        Flask-Login only marks a permanent session not fresh, which would
        make a remembered session weaker than its remember cookie was: that
        cookie, under strong protection, is deleted.
        """
        current = _our_session()
        manager = getattr(app, "login_manager", None)
        strong = getattr(manager, "session_protection", None) == "strong"
        if strong and current is not None and current.get(REMEMBERED):
            current.destroy()

    def _lifetime(self, app: Flask) -> timedelta:
        if self.remember_lifetime is not None:
            return self.remember_lifetime
        duration = app.config.get("REMEMBER_COOKIE_DURATION", REMEMBER_LIFETIME)
        return timedelta(seconds=duration) if isinstance(duration, (int, float)) else duration

    @staticmethod
    def _logged_out(app: Flask, **_: Any) -> None:
        """End the session.

        A ``remember_token`` the browser still has was hidden from Flask-Login
        and is deleted by the response (:func:`refuse_remember_cookie`).
        """
        current = _our_session()
        if current is not None:
            current.destroy()


def refuse_remember_cookie(app: Flask, request: Request) -> None:
    """Hide a ``remember_token`` from before the switch from Flask-Login, and delete it.

    Called as the session opens, before any ``before_request`` hook could
    load the user. Flask-Login reads the cookie from ``request.cookies``; the
    request's cookies are parsed once and kept, so this request's are
    replaced by all but that one. The response deletes it
    (:func:`strip_remember_cookie`).
    """
    name = _remember_cookie(app)
    if name is None:
        return
    cookies = request.cookies
    if name in cookies:
        kept = [(key, value) for key, value in cookies.items(multi=True) if key != name]
        request.__dict__["cookies"] = ImmutableMultiDict(kept)
        g._scs_refused_remember = True


def strip_remember_cookie(app: Flask, response: Response) -> None:
    """Keep Flask-Login's remember cookie from ``response``; delete a refused one.

    Flask-Login sets it in an ``after_request``, which runs before the
    session is saved, so this sees it whatever order the extensions were set
    up in (``REMEMBER_COOKIE_REFRESH_EACH_REQUEST`` sets it on every request).
    """
    name = _remember_cookie(app)
    if name is None:
        return
    config = app.config
    lines = response.headers.getlist("Set-Cookie")
    kept = [line for line in lines if not _sets(line, name)]
    if len(kept) != len(lines):
        response.headers.remove("Set-Cookie")
        for line in kept:
            response.headers.add("Set-Cookie", line)
    if g.get("_scs_refused_remember") and not any(line.startswith(f"{name}=") for line in kept):
        response.delete_cookie(
            name,
            path=config.get("REMEMBER_COOKIE_PATH", "/"),
            domain=config.get("REMEMBER_COOKIE_DOMAIN"),
        )


def _our_session() -> Session | None:
    """This request's session, if it is one of ours."""
    current = session._get_current_object()  # type: ignore[attr-defined]
    return current if isinstance(current, Session) else None


def _remember_cookie(app: Flask) -> str | None:
    """The name of Flask-Login's remember cookie; None if ``app`` has no ``LoginManager``."""
    if getattr(app, "login_manager", None) is None:
        return None
    return str(app.config.get("REMEMBER_COOKIE_NAME", REMEMBER_COOKIE))


def _sets(line: str, name: str) -> bool:
    """Whether the Set-Cookie ``line`` gives the cookie ``name`` a value.

    A deletion, as ``delete_cookie`` writes it, gives it none.
    """
    cookie, _, value = line.split(";", 1)[0].partition("=")
    return cookie.strip() == name and bool(value.strip().strip('"'))
