"""The session cookie: whether a response sets, deletes or keeps it, and its headers.

:func:`session_cookie` is the one decision, made for every adapter from what
the commit did; :meth:`SessionCookie.apply` writes it into a response's
headers. The adapters supply only their settings and their overridable rules.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from werkzeug.datastructures import Headers, ResponseCacheControl
from werkzeug.http import dump_cookie, http_date, parse_cache_control_header, parse_set_header
from werkzeug.sansio.http import parse_cookie

from .options import Options
from .session import Session
from .state import LIVE_OUTCOMES, Outcome

_NO_CACHE_SET_COOKIE = 'no-cache="Set-Cookie"'


class CookieSettings(NamedTuple):
    """The session cookie's name and attributes."""

    name: str
    domain: str | None
    path: str | None
    secure: bool
    httponly: bool
    samesite: str | None
    partitioned: bool

    @classmethod
    def from_options(cls, options: Options) -> CookieSettings:
        """Return the cookie settings among ``options`` (the middleware's)."""
        return cls(
            options.cookie_name,
            options.cookie_domain,
            options.cookie_path,
            options.cookie_secure,
            options.cookie_httponly,
            options.cookie_samesite,
            options.cookie_partitioned,
        )

    def dump(self, token: str, expires: datetime | None) -> str:
        """Return a Set-Cookie value that sets ``token`` until ``expires``.

        None for ``expires`` makes a browser-session cookie.
        """
        return self._dump(token, max_age_until(expires), expires)

    def dump_deletion(self) -> str:
        """Return a Set-Cookie value that deletes the cookie."""
        return self._dump("", 0, 0)

    def _dump(self, value: str, max_age: int | None, expires: datetime | int | None) -> str:
        if not value.replace("-", "").replace("_", "").isalnum() and value:
            return self._werkzeug(value, max_age, expires)  # not a token: let werkzeug quote it
        named, domain, tail = _layout(self)
        if expires is None:
            return f"{named}{value}{domain}{tail}"
        return f"{named}{value}{domain}; Expires={_http_date(expires)}; Max-Age={max_age}{tail}"

    def _werkzeug(self, value: str, max_age: int | None, expires: datetime | int | None) -> str:
        return dump_cookie(
            self.name,
            value,
            max_age=max_age,
            expires=expires,
            path=self.path,
            domain=self.domain,
            secure=self.secure,
            httponly=self.httponly,
            samesite=self.samesite,
            partitioned=self.partitioned,
        )


@functools.lru_cache(maxsize=64)
def _layout(settings: CookieSettings) -> tuple[str, str, str]:
    """A Set-Cookie value of ``settings`` as werkzeug writes it, in the three parts around
    a token and its expiry: ``name=``, ``; Domain=...`` (or nothing) and the attributes after.
    """
    named, *attributes = settings._werkzeug("", None, None).split("; ")
    domain = attributes.pop(0) if attributes and attributes[0].startswith("Domain=") else ""
    return named, f"; {domain}" if domain else "", "".join(f"; {a}" for a in attributes)


_last_date: tuple[int, str] = (0, http_date(0))


def _http_date(expires: datetime | int) -> str:
    """``expires`` as an HTTP date, formatted once per second."""
    global _last_date
    second = expires if isinstance(expires, int) else math.floor(expires.timestamp())
    last = _last_date
    if last[0] != second:
        last = _last_date = (second, http_date(second))
    return last[1]


class SessionCookie(NamedTuple):
    """What a response needs for its session."""

    #: A Set-Cookie value that sets or deletes the session cookie, or None to leave it.
    set_cookie: str | None
    #: Whether the response depends on the session, so on the Cookie header.
    vary: bool

    def apply(self, headers: Headers) -> None:
        """Add the cookie, ``Vary: Cookie`` and ``Cache-Control``, keeping the app's own."""
        if not self.vary and self.set_cookie is None:
            return
        # One pass finds whether the app set either header; usually it did not.
        vary = cache_control = False
        for name, _ in headers:
            folded = name.lower()
            vary = vary or folded == "vary"
            cache_control = cache_control or folded == "cache-control"
        if self.set_cookie is not None:
            headers.add("Set-Cookie", self.set_cookie)
        if self.vary:
            if vary:
                vary_on_cookie(headers)
            else:
                headers.add("Vary", "Cookie")
        if self.set_cookie is not None:
            if not cache_control:
                headers.add("Cache-Control", _NO_CACHE_SET_COOKIE)
                return
            current = _joined(headers, "Cache-Control")
            merged = no_cache_set_cookie(current)
            if merged != current:
                headers["Cache-Control"] = merged


#: Leave the cookie alone, and the response too: the session was not used.
KEEP = SessionCookie(None, vary=False)
#: Leave the cookie alone, but the response depends on the session.
KEEP_VARY = SessionCookie(None, vary=True)


def session_cookie(
    outcome: Outcome,
    session: Session,
    settings: Callable[[], CookieSettings],
    should_set: Callable[[Session], bool],
    expires: Callable[[Session], datetime | None],
) -> SessionCookie:
    """Decide what a response needs after a commit with ``outcome``.

    The cookie is deleted when the session ended, set when the session is
    live and ``should_set(session)`` says so, until ``expires(session)``
    (None: a browser-session cookie), and otherwise left alone. A live
    session's cookie may be set without a write (``modified`` set by an
    assignment of an equal value, or by hand); a new session that stayed
    empty gets none, whatever ``modified`` says, as no record backs it. The
    adapter's rules are called only when needed, so they never load an
    unused session.
    """
    if outcome is Outcome.ENDED:
        return SessionCookie(settings().dump_deletion(), vary=True)
    if outcome in LIVE_OUTCOMES and should_set(session):
        return SessionCookie(settings().dump(session.token or "", expires(session)), vary=True)
    return KEEP_VARY if session.accessed else KEEP


def cookie_in(header: str | None, name: str) -> str | None:
    """The value of the first cookie ``name`` in the Cookie ``header``, as werkzeug reads it.

    A header without quotes or backslashes is split at its semicolons by
    hand, by the rules of werkzeug's ``parse_cookie`` (spaces and tabs around
    a name, ``=`` and a value are dropped; a piece with one inside its name or
    value is skipped), which costs a fraction of building the request's
    whole cookie dict. Any other header goes through ``parse_cookie``.
    """
    if not header or name not in header:
        return None
    if '"' in header or "\\" in header:
        return parse_cookie(header).get(name)
    for piece in header.split(";"):
        key, _, value = piece.strip(" \t").partition("=")
        if key.rstrip(" \t") != name:
            continue
        value = value.lstrip(" \t")
        if " " not in value and "\t" not in value:
            return value
    return None


def persistent_expiry(session: Session, refreshed: bool) -> datetime | None:
    """When a permanent session's cookie expires; None for a browser-session cookie.

    A cookie ``refreshed`` on each request that uses the session (Flask's
    ``SESSION_REFRESH_EACH_REQUEST``, on by default) expires when the record
    would as of now: the end of the sliding window, or the deadline if
    sooner. Both move together, as each read moves the record's expiry and
    sends the cookie again. A cookie sent only on a change expires at the
    deadline: reads slide the record without sending it, and it must not
    expire before a record that an active user kept alive. The server ends
    an idle session either way.

    .. versionchanged:: 0.2
        A refreshed cookie follows the sliding window.
    """
    if not session.permanent:
        return None
    return session.expires if refreshed else session.deadline


def max_age_until(expires: datetime | None) -> int | None:
    """Return whole seconds from now until ``expires``, never negative; None for None.

    Rounded down, so a cookie never outlives the record it points at.
    """
    if expires is None:
        return None
    return max(0, math.floor(expires.timestamp() - time.time()))


def _joined(headers: Headers, name: str) -> str | None:
    """All lines of the header ``name`` as one value, as HTTP allows; None if absent."""
    lines = headers.getlist(name)
    return ", ".join(lines) if lines else None


def vary_on_cookie(headers: Headers) -> None:
    """Add ``Cookie`` to the Vary header, keeping every field the app put there.

    The app may have sent Vary on several lines: they are read together, and
    written back as one line only when ``Cookie`` must be added.
    """
    current = _joined(headers, "Vary")
    if not current:
        headers["Vary"] = "Cookie"
        return
    values = parse_set_header(current)
    if "cookie" not in values and "*" not in values:
        values.add("Cookie")
        headers["Vary"] = values.to_header()


def no_cache_set_cookie(cache_control: str | None) -> str:
    """Add ``no-cache="Set-Cookie"`` to a Cache-Control header value.

    A shared cache then never stores a response that sets the session cookie
    and hands it to someone else (OWASP's advice). A stricter ``no-cache`` or
    ``no-store`` already there is kept as it is.
    """
    if not cache_control:
        return _NO_CACHE_SET_COOKIE
    parsed = parse_cache_control_header(cache_control, cls=ResponseCacheControl)
    fields = parsed.no_cache
    if parsed.no_store or fields is True or fields == "*":
        return cache_control or ""
    names = [name.strip() for name in (fields or "").split(",") if name.strip()]
    if any(name.lower() == "set-cookie" for name in names):
        return cache_control or ""
    parsed.no_cache = None
    # The quoted form, which RFC 9111 asks senders to use for field names.
    directive = 'no-cache="{}"'.format(", ".join([*names, "Set-Cookie"]))
    rest = parsed.to_header()
    return f"{rest}, {directive}" if rest else directive
