"""Signals of a session's life, for audit logs: created, renewed, destroyed.

They are blinker signals, as Flask's own are. Each is sent once per event,
after the store confirmed it, with the Flask app as sender (under the WSGI
middleware, the middleware; from a :class:`~.admin.SessionAdmin` made by
hand, its ``sender``) and three keyword arguments:

``session_id``
    The session's id as the admin shows it: a hash of the token, never the token.
``user``
    The user the session is indexed under (see ``SCS_USER_KEY``), as a str, or None.
``reason``
    Why, as a short string:

    - :data:`session_created`: ``"new"``, or ``"migrated"`` for a session
      taken up from the store the app moves off (see :mod:`.migration`);
    - :data:`session_renewed`: ``"renew"`` (``session.renew()``), ``"login"``
      (a renewal that put a new user in the session, automatic with
      ``SCS_RENEW_ON_LOGIN``) or ``"rotation"`` (see :mod:`.rotation`); the
      ``session_id`` is the new one, and ``previous_id`` the old;
    - :data:`session_destroyed`: ``"destroy"`` (``session.destroy()``,
      Flask-Login's logout), ``"emptied"`` (a request cleared every value),
      ``"logout-everywhere"`` (``destroy_user_sessions``, ``purge --user``),
      ``"admin"`` (``destroy(session_id)``, the CLI's ``delete`` and ``purge --all``),
      ``"evicted"`` (``SCS_MAX_SESSIONS_PER_USER``) or ``"corrupt"`` (a record
      that could not be read, deleted).

:data:`session_renewed` also passes ``previous_id``, the id the session had
before, so write receivers as Flask's docs advise, taking ``**extra``: later
versions may pass more. A session that times out sends nothing: Redis
expires it silently.

A receiver that raises is logged (logger ``flask_scs_redis``) and the rest
are still called: an audit log that fails must not fail the request, or the
logout. With no receiver connected, sending costs nothing.

.. versionadded:: 0.2
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from blinker import NamedSignal, Namespace

logger = logging.getLogger("flask_scs_redis")

_signals = Namespace()

#: A session was stored for the first time.
session_created = _signals.signal("scs-session-created")
#: A session's values moved to a new token, and the old token was ended.
session_renewed = _signals.signal("scs-session-renewed")
#: A session was ended on the server.
session_destroyed = _signals.signal("scs-session-destroyed")


class Announcer:
    """Send the signals for one engine or admin, as ``sender``.

    ``public_id`` turns a record's key into the session id shown (see
    :meth:`.keys.KeySpace.public_id`), so a token never reaches a receiver.
    """

    def __init__(self, sender: Any, public_id: Callable[[str], str]) -> None:
        self.sender = sender
        self._public_id = public_id

    def created(self, key: str, user: str | None, reason: str) -> None:
        """Announce the session now at ``key``."""
        self._send(session_created, key, user, reason)

    def renewed(self, key: str, previous_key: str, user: str | None, reason: str) -> None:
        """Announce that the session at ``previous_key`` moved to ``key``."""
        self._send(session_renewed, key, user, reason, previous_key)

    def destroyed(self, key: str, user: str | None, reason: str) -> None:
        """Announce that the session at ``key`` was ended."""
        self._send(session_destroyed, key, user, reason)

    def _send(
        self, signal: NamedSignal, key: str, user: str | None, reason: str, previous: str = ""
    ) -> None:
        """Call each receiver of ``signal``; one that raises is logged, and the rest still run."""
        if not signal.receivers:
            return
        session_id = self._public_id(key)
        extra = {"previous_id": self._public_id(previous)} if previous else {}
        for receiver in signal.receivers_for(self.sender):
            try:
                receiver(self.sender, session_id=session_id, user=user, reason=reason, **extra)
            except Exception:
                logger.exception(
                    "a receiver of %s raised (session %s, reason %s); the request goes on",
                    signal.name,
                    session_id,
                    reason,
                )
