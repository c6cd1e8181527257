"""What a :class:`~.session.Session` asks of the engine that opened it, and of an old store.

Protocols only, so that the session needs no engine to be imported, and the
engine needs no adapter to take up a session of the store an app moves off.
"""

from __future__ import annotations

from typing import Any, Protocol

from .state import SessionState


class Predecessor(Protocol):
    """The session that a request's cookie names in the store an app moves off.

    See :mod:`.migration`. The engine asks for its values only when our
    store does not know the cookie, and has it forget the session once its
    values are saved here, or once the session is ended.
    """

    def values(self) -> dict[Any, Any] | None:
        """Its values, or None where there is no such session (at most one command)."""

    def forget(self) -> None:
        """Delete it from the old store, so it cannot be taken up again."""


class SessionBackend(Protocol):
    """What a :class:`Session` asks of the engine that opened it."""

    def load(
        self, state: SessionState, cookie_token: str | None, predecessor: Predecessor | None
    ) -> tuple[SessionState, dict[Any, Any]]:
        """Read the session ``cookie_token`` names, or else take up ``predecessor``'s."""

    def destroy(
        self, state: SessionState, cookie_token: str | None, predecessor: Predecessor | None
    ) -> SessionState:
        """Delete the session's record now; return the state of a new, empty session."""

    def session_id(self, key: str) -> str:
        """Return the store id of the record at ``key``."""
