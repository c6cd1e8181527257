"""Taking up the sessions of the store an app moves off, so that a switch logs nobody out.

``SCS_MIGRATE_FROM`` names the sources, tried in that order on a request
whose cookie our store does not know:

``"flask-session"``
    Flask-Session 0.8's records, in ``SESSION_REDIS`` if that is still a
    client, else in our Redis, under its ``SESSION_KEY_PREFIX``
    (``session:`` by default). The cookie holds the sid, signed with
    ``SECRET_KEY`` when ``SESSION_USE_SIGNER`` is on, as Flask-Session signs
    it (``SECRET_KEY_FALLBACKS`` are taken too); with the signer on, an
    unsigned sid is never taken up, as Flask-Session never issued one. The
    record is msgpack or JSON, as Flask-Session 0.8 writes it; a pickled
    record (from Flask-Session before 0.8) is never read, nor a msgpack
    extension other than a timestamp.
``"cookie"``
    Flask's own signed-cookie session, verified as Flask verifies it: its
    serializer and salt, ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``, and
    ``PERMANENT_SESSION_LIFETIME`` as the age of the oldest signature taken.
    Flask's tagged types (tuple, Markup, UUID, datetime, bytes) come back
    as themselves.

The engine asks for the values only when our store has no session for the
cookie. It saves them under a new token, which the response carries, and
then has the old store forget them (see :class:`~.session.Predecessor`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

import msgpack
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import Signer

from .connections import translated_errors
from .session import Predecessor

logger = logging.getLogger("flask_scs_redis")

# A Flask-Session sid: secrets.token_urlsafe of SESSION_ID_LENGTH bytes (32 by default).
_SID = re.compile(r"[A-Za-z0-9_-]{1,256}")
# The first byte of a msgpack map; anything else is read as JSON.
_MSGPACK_MAP = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}


class FlaskSessionRecord:
    """A Flask-Session record at ``key``: one GET to read, one DEL to forget."""

    def __init__(self, client: Any, key: str) -> None:
        self.client = client
        self.key = key

    def values(self) -> dict[Any, Any] | None:
        """The record's values; None if there is none or it is no msgpack or JSON map.

        :raises SessionStoreError: the store failed.
        """
        with translated_errors():
            blob = self.client.get(self.key)
        return None if blob is None else _record_values(blob)

    def forget(self) -> None:
        """Delete the record.

        :raises SessionStoreError: the store failed.
        """
        with translated_errors():
            self.client.delete(self.key)


class SignedCookie:
    """Flask's signed-cookie session in ``cookie``: nothing stored, nothing to forget."""

    def __init__(self, app: Flask, cookie: str) -> None:
        self.app = app
        self.cookie = cookie

    def values(self) -> dict[Any, Any] | None:
        """The cookie's values if Flask would take them: signed and not too old."""
        serializer = SecureCookieSessionInterface().get_signing_serializer(self.app)
        if serializer is None:  # no SECRET_KEY: Flask would have issued no cookie
            return None
        max_age = int(self.app.permanent_session_lifetime.total_seconds())
        try:
            values = serializer.loads(self.cookie, max_age=max_age)
        except Exception:  # a bad signature, an old one, or hostile bytes: no session
            return None
        return values if type(values) is dict else None

    def forget(self) -> None:
        """Nothing: the response's new cookie replaces this one."""


class Predecessors:
    """The first of ``candidates`` that has values; forgetting forgets that one.

    Forgetting before any was asked for (a logout that never read the
    session) forgets them all.
    """

    def __init__(self, candidates: Sequence[Predecessor]) -> None:
        self.candidates = candidates
        self._found: Predecessor | None = None

    def values(self) -> dict[Any, Any] | None:
        """The values of the first candidate that has any."""
        for candidate in self.candidates:
            values = candidate.values()
            if values:
                self._found = candidate
                return values
        return None

    def forget(self) -> None:
        """Forget the candidate whose values were taken, or else all of them."""
        for candidate in [self._found] if self._found is not None else self.candidates:
            candidate.forget()


def predecessor(
    app: Flask, cookie: str | None, sources: Sequence[str], client: Any
) -> Predecessor | None:
    """The session ``cookie`` may name in each of ``sources``; None if it can name none.

    Nothing is read here. ``client`` is the Redis client of our store, where
    Flask-Session's records are unless ``SESSION_REDIS`` names another.
    """
    if not cookie or not sources:
        return None
    candidates: list[Predecessor] = []
    for source in sources:
        if source == "flask-session":
            key = _flask_session_key(app, cookie)
            if key is not None:
                theirs = app.config.get("SESSION_REDIS")
                found_in = theirs if hasattr(theirs, "execute_command") else client
                candidates.append(FlaskSessionRecord(found_in, key))
        elif "." in cookie:  # a signed cookie has its signature after a dot
            candidates.append(SignedCookie(app, cookie))
    return Predecessors(candidates) if candidates else None


def _flask_session_key(app: Flask, cookie: str) -> str | None:
    """The key of the Flask-Session record ``cookie`` names, if it could name one."""
    sid: str | None = cookie
    if app.config.get("SESSION_USE_SIGNER", False):
        sid = _unsigned(app, cookie)
    if sid is None or not _SID.fullmatch(sid):
        return None
    return str(app.config.get("SESSION_KEY_PREFIX", "session:")) + sid


def _unsigned(app: Flask, cookie: str) -> str | None:
    """The sid in ``cookie`` if Flask-Session signed it with ``SECRET_KEY``.

    Or with one of ``SECRET_KEY_FALLBACKS``, as Flask's own cookies are taken.
    """
    if not app.secret_key:
        return None
    keys = [*(app.config.get("SECRET_KEY_FALLBACKS") or ()), app.secret_key]
    signer = Signer(keys, salt="flask-session", key_derivation="hmac")
    try:
        return signer.unsign(cookie).decode("ascii")
    except Exception:  # a bad signature, or hostile bytes: no session
        return None


def _no_extension(code: int, data: bytes) -> Any:
    """Refuse a msgpack extension other than a timestamp: msgspec writes no other."""
    raise ValueError(f"msgpack extension type {code}")


def _record_values(blob: bytes) -> dict[Any, Any] | None:
    """The values in a Flask-Session 0.8 record: a msgpack or JSON map."""
    try:
        if blob[:1] and blob[0] in _MSGPACK_MAP:
            values = msgpack.unpackb(
                blob, raw=False, strict_map_key=False, timestamp=3, ext_hook=_no_extension
            )
        else:
            values = json.loads(blob)
    except Exception as exc:  # never the data in the log: it may hold secrets
        logger.warning(
            "a Flask-Session record is not msgpack or JSON (%s), so it was not taken up;"
            " records of Flask-Session before 0.8 are pickled, and pickle is never read",
            type(exc).__name__,
        )
        return None
    return values if type(values) is dict else None
