"""The per-request session object that views use as ``flask.session``."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from flask.sessions import SessionMixin

if TYPE_CHECKING:
    from .engine import SessionEngine


class Status(enum.Enum):
    """Where a request's session is in its life; the save step reads only this."""

    #: The cookie's token is known, the store has not been asked yet.
    UNLOADED = "unloaded"
    #: The values are those the store holds, or those of a new session.
    LOADED = "loaded"
    #: As LOADED, and the save moves the values to a new token.
    RENEWED = "renewed"
    #: The record was deleted; a write starts a new session with a new token.
    DESTROYED = "destroyed"


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _loads_first(method: _Method) -> _Method:
    """Wrap a ``dict`` method so that it loads the session before it runs."""

    def loading(self: Session, *args: Any, **kwargs: Any) -> Any:
        self._ensure_loaded()
        return method(self, *args, **kwargs)

    loading.__name__ = method.__name__
    loading.__doc__ = method.__doc__
    return loading  # type: ignore[return-value]


class Session(dict[str, Any], SessionMixin):
    """A session: a dict of the values kept for one browser, plus its lifecycle.

    The store is read on first use, not when the request starts, so a request
    that never touches the session costs no Redis command. A new session has
    no token until it is first saved; empty sessions are never stored.

    .. versionadded:: 0.1
    """

    #: Set when the values were read or written in this request; it adds
    #: ``Vary: Cookie`` to the response.
    accessed: bool

    #: Whether the save wrote the record. Computed by comparing the encoded
    #: values at save time, so nested changes such as
    #: ``session["cart"].append(item)`` count without setting it by hand.
    modified: bool

    def __init__(
        self,
        engine: SessionEngine,
        cookie_token: str | None,
        *,
        lifetime_ms: int,
        permanent_default: bool = False,
    ) -> None:
        super().__init__()
        self._engine = engine
        self._status = Status.UNLOADED
        self._cookie_token = cookie_token
        self._lifetime_ms = lifetime_ms
        self._permanent_default = permanent_default
        #: The token of the stored record; None while there is none.
        self._token: str | None = None
        self._key: str | None = None
        self._revision = 0
        #: The bytes that begin the stored record, up to its revision.
        self._tag = b""
        #: The token a renewal moves to, chosen at its first attempt.
        self._renewed_token: str | None = None
        #: The user the stored record is indexed under.
        self._indexed_user: str | None = None
        self._stored_description: str | None = None
        self._description: str | None = None
        self._last_seen_ms = 0
        self._stored_values: bytes | None = None
        self._deadline_ms = 0
        self._created_ms = 0
        self._expiry_ms = 0
        self.accessed = False
        self.modified = False

    @property
    def status(self) -> Status:
        """Where the session is in its life in this request."""
        return self._status

    @property
    def token(self) -> str | None:
        """The token the cookie carries, or None until the session is first saved.

        It changes at the save that follows :meth:`renew` or :meth:`destroy`.
        """
        self._ensure_loaded()
        return self._token

    @property
    def id(self) -> str | None:
        """The store id of the session: safe to show or log, useless as a cookie.

        With hashed tokens it is a hash of the token. None until first saved.
        """
        self._ensure_loaded()
        return None if self._key is None else self._engine.store.id_of(self._key)

    @property
    def description(self) -> str | None:
        """A short description of the client, such as "Firefox on Linux".

        The app may set it to help users tell their sessions apart; it is
        stored with the session and shown in listings. None by default:
        nothing about the client is collected.
        """
        self._ensure_loaded()
        return self._description

    @description.setter
    def description(self, value: str | None) -> None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"a session description is a str or None, not {type(value).__name__}")
        self._ensure_loaded()
        self._description = value

    @property
    def created_at(self) -> datetime:
        """When the session was first saved (or would be), an aware UTC datetime."""
        self._ensure_loaded()
        return datetime.fromtimestamp(self._created_ms / 1000, tz=timezone.utc)

    @property
    def last_seen(self) -> datetime:
        """When the session was last written; reads do not move it, to cost nothing."""
        self._ensure_loaded()
        return datetime.fromtimestamp(self._last_seen_ms / 1000, tz=timezone.utc)

    @property
    def new(self) -> bool:  # type: ignore[override]
        """Whether no record is stored for this session yet.

        True for a session that is not saved yet, including after :meth:`destroy`.
        """
        self._ensure_loaded()
        return self._token is None

    @property
    def deadline(self) -> datetime:
        """The absolute end of the session, an aware UTC datetime.

        Activity never moves it; :meth:`renew` starts a new lifetime.
        """
        self._ensure_loaded()
        return datetime.fromtimestamp(self._deadline_ms / 1000, tz=timezone.utc)

    @property
    def expires(self) -> datetime:
        """When the stored record expires: the deadline, or sooner when idle.

        This is the Expires of a persistent cookie.
        """
        self._ensure_loaded()
        return datetime.fromtimestamp(self._expiry_ms / 1000, tz=timezone.utc)

    @property
    def permanent(self) -> bool:
        """Whether the cookie outlives the browser session (Flask's meaning).

        The server-side lifetime and idle timeout apply either way.
        """
        return bool(self.get("_permanent", self._permanent_default))

    @permanent.setter
    def permanent(self, value: bool) -> None:
        self["_permanent"] = bool(value)

    def renew(self) -> None:
        """Move the values to a new token at the next save and delete the old record.

        Call it on login and on any change of privilege, so a token planted
        before login (session fixation) is worthless after it. The absolute
        lifetime starts again.
        """
        self._ensure_loaded()
        if self._token is not None and self._status is Status.LOADED:
            self._status = Status.RENEWED

    def destroy(self) -> None:
        """End the session now: delete the record, clear the values, drop the cookie.

        A value written after this starts a new session with a new token.
        """
        self.accessed = True
        self._engine.destroy(self)

    def _ensure_loaded(self) -> None:
        if self._status is Status.UNLOADED:
            self._engine.load(self)
        self.accessed = True

    def __repr__(self) -> str:
        if self._status is Status.UNLOADED:
            return f"<{type(self).__name__} not loaded>"
        return f"<{type(self).__name__} {self._status.value} {dict.__repr__(self)}>"

    # Every way to read or change the values loads them first.
    __getitem__ = _loads_first(dict.__getitem__)
    __setitem__ = _loads_first(dict.__setitem__)
    __delitem__ = _loads_first(dict.__delitem__)
    __contains__ = _loads_first(dict.__contains__)
    __iter__ = _loads_first(dict.__iter__)
    __len__ = _loads_first(dict.__len__)
    __eq__ = _loads_first(dict.__eq__)
    __ne__ = _loads_first(dict.__ne__)
    __or__ = _loads_first(dict.__or__)
    __ror__ = _loads_first(dict.__ror__)
    __ior__ = _loads_first(dict.__ior__)
    __reversed__ = _loads_first(dict.__reversed__)
    get = _loads_first(dict.get)
    keys = _loads_first(dict.keys)
    values = _loads_first(dict.values)
    items = _loads_first(dict.items)
    pop = _loads_first(dict.pop)
    popitem = _loads_first(dict.popitem)
    setdefault = _loads_first(dict.setdefault)
    update = _loads_first(dict.update)
    clear = _loads_first(dict.clear)
    copy = _loads_first(dict.copy)
    __hash__ = None  # type: ignore[assignment]
