"""The per-request session object that views use as ``flask.session``."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask.sessions import SessionMixin

from .backend import Predecessor, SessionBackend
from .clock import milliseconds, moment, now_ms
from .errors import SessionStoreUnavailable
from .state import SessionState, Status
from .validation import duration

__all__ = ["Predecessor", "Session", "SessionBackend", "Status"]


class _Keep(enum.Enum):
    KEEP = "keep"


#: ``set_expiry``'s default idle timeout: the one the session has.
KEEP = _Keep.KEEP

_Method = TypeVar("_Method", bound=Callable[..., Any])


def _loads_first(method: _Method) -> _Method:
    """Wrap a ``dict`` method so that it loads the session before it runs."""

    def loading(self: Session, *args: Any, **kwargs: Any) -> Any:
        self._ensure_loaded()
        return method(self, *args, **kwargs)

    loading.__name__ = method.__name__
    loading.__doc__ = method.__doc__
    return loading  # type: ignore[return-value]


def _changes(method: _Method, when: Callable[[Session, Any], bool] | None = None) -> _Method:
    """Wrap a ``dict`` method that changes the values: load first, then set ``modified``.

    ``when(session, key)``, if given, says beforehand whether the call changes
    anything, as Flask's ``CallbackDict`` decides for ``pop`` and ``setdefault``.
    """

    def changing(self: Session, *args: Any, **kwargs: Any) -> Any:
        self._ensure_loaded()
        changes = when is None or (bool(args) and when(self, args[0]))
        result = method(self, *args, **kwargs)
        if changes:
            self._modified = True
        return result

    changing.__name__ = method.__name__
    changing.__doc__ = method.__doc__
    return changing  # type: ignore[return-value]


def _holds(session: Session, key: Any) -> bool:
    return dict.__contains__(session, key)


def _lacks(session: Session, key: Any) -> bool:
    return not dict.__contains__(session, key)


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

    #: Keys that are never in a stored record, so asking whether the session
    #: holds one loads nothing: Flask-Login's ``_remember`` under the
    #: integration (see :mod:`.login`), which its ``after_request`` asks of
    #: every request.
    never_stored: frozenset[str] = frozenset()

    def __init__(
        self,
        backend: SessionBackend,
        cookie_token: str | None,
        *,
        lifetime_ms: int,
        idle_ms: int | None = None,
        permanent_default: bool = False,
        predecessor: Predecessor | None = None,
    ) -> None:
        super().__init__()
        self._backend = backend
        self._cookie_token = cookie_token
        self._predecessor = predecessor
        self._permanent_default = permanent_default
        self._state = SessionState.unloaded(lifetime_ms, idle_ms)
        self.accessed = False
        self._modified = False
        self._failure: SessionStoreUnavailable | None = None

    @property
    def modified(self) -> bool:
        """Whether the cookie is sent again: Flask's ``modified``.

        Every change through the dict sets it, as in Flask: assigning (an equal
        value too), ``del``, ``pop`` and ``popitem`` of a present key,
        ``update``, ``|=``, ``setdefault`` of a new key, ``clear``. Set it by
        hand to re-send the cookie. A nested change such as
        ``session["cart"].append(item)`` needs neither: the save compares the
        encoded values, and sets it when it writes. Redis is written only when
        the encoded values changed, whatever this says.

        .. versionchanged:: 0.2
            Set by changes through the dict, and honoured when set by hand;
            it was only whether the save wrote.
        """
        return self._modified

    @modified.setter
    def modified(self, value: bool) -> None:
        if value:
            self._ensure_loaded()  # a cookie sent again must name a record that exists
        self._modified = bool(value)

    @property
    def status(self) -> Status:
        """Where the session is in its life in this request."""
        return self._state.status

    @property
    def token(self) -> str | None:
        """The token the cookie carries, or None until the session is first saved.

        It changes at the save that follows :meth:`renew`, :meth:`destroy` or a rotation.
        """
        self._ensure_loaded()
        return self._state.token

    @property
    def id(self) -> str | None:
        """The id of the session: safe to show or log, useless as a cookie.

        A hash of the token (with hashed tokens, the store id), which the
        admin calls accept. None until first saved.
        """
        self._ensure_loaded()
        key = self._state.key
        return None if key is None else self._backend.session_id(key)

    @property
    def description(self) -> str | None:
        """A short description of the client, such as "Firefox on Linux".

        The app may set it to help users tell their sessions apart; it is
        stored with the session and shown in listings. None by default:
        nothing about the client is collected.
        """
        self._ensure_loaded()
        return self._state.description

    @description.setter
    def description(self, value: str | None) -> None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"a session description is a str or None, not {type(value).__name__}")
        self._ensure_loaded()
        self._state = self._state._replace(description=value)

    @property
    def created_at(self) -> datetime:
        """When the session was first saved (or would be), an aware UTC datetime."""
        self._ensure_loaded()
        return moment(self._state.created_ms)

    @property
    def last_seen(self) -> datetime:
        """When the session was last written; reads do not move it, to cost nothing."""
        self._ensure_loaded()
        return moment(self._state.last_seen_ms)

    @property
    def new(self) -> bool:  # type: ignore[override]
        """Whether no record is stored for this session yet.

        True for a session that is not saved yet, including after :meth:`destroy`.
        """
        self._ensure_loaded()
        return self._state.token is None

    @property
    def deadline(self) -> datetime:
        """The absolute end of the session, an aware UTC datetime.

        Activity never moves it; :meth:`renew` starts a new lifetime. With no
        absolute cap (Flask's default, see the README's "Lifetimes"), it is
        100 years (:data:`.options.MAX_DURATION`) after the session began.
        """
        self._ensure_loaded()
        return moment(self._state.deadline_ms)

    @property
    def expires(self) -> datetime:
        """When the stored record expires unless used again: the deadline, or sooner when idle.

        Each read moves it (the sliding window). A persistent cookie is set
        to expire with it.
        """
        self._ensure_loaded()
        return moment(self._state.expiry_ms)

    @property
    def permanent(self) -> bool:
        """Whether the cookie outlives the browser session (Flask's meaning).

        The server-side lifetime and idle timeout apply either way.
        """
        return bool(self.get("_permanent", self._permanent_default))

    @permanent.setter
    def permanent(self, value: bool) -> None:
        self["_permanent"] = bool(value)

    def set_expiry(
        self,
        lifetime: timedelta | float | None,
        idle_timeout: timedelta | float | _Keep | None = KEEP,
    ) -> None:
        """Give this session an absolute lifetime of its own, counted from now.

        With ``idle_timeout`` it gets its own idle timeout too (None: none);
        by default it keeps the one it has. Both are kept in the record
        through later requests and renewals, and set the TTL and a persistent
        cookie's expiry. ``lifetime`` None goes back to the app's settings.
        Remember-me is a long lifetime, no idle timeout, and ``permanent``.

        :raises ConfigurationError: a duration is not positive or over 100 years.

        .. versionadded:: 0.2
        """
        lifetime_ms = None if lifetime is None else milliseconds(duration("lifetime", lifetime))
        idle_ms = 0 if idle_timeout is None else None
        if idle_timeout is not None and not isinstance(idle_timeout, _Keep):
            idle_ms = milliseconds(duration("idle_timeout", idle_timeout))
        self._ensure_loaded()
        state = self._state
        if isinstance(idle_timeout, _Keep):
            idle_ms = state.own_idle_ms
        self._state = state.expiring(now_ms(), lifetime_ms, idle_ms)
        self._modified = True

    def renew(self) -> None:
        """Move the values to a new token at the next save and delete the old record.

        Call it on login and on any change of privilege, so a token planted
        before login (session fixation) is worthless after it. The absolute
        lifetime starts again. Unlike a rotation, it leaves the old token no
        grace: a request still in flight with it finds no session.
        """
        self._ensure_loaded()
        state = self._state
        if state.token is not None and state.status in (Status.LOADED, Status.ROTATING):
            self._state = state._replace(status=Status.RENEWED)

    def destroy(self) -> None:
        """End the session now: delete the record, clear the values, drop the cookie.

        A value written after this starts a new session with a new token.
        """
        self.accessed = True
        ended = self._backend.destroy(self._state, self._cookie_token, self._predecessor)
        self._adopt(ended, {})

    def _ensure_loaded(self) -> None:
        if self._state.status is Status.UNLOADED:
            try:
                self._adopt(*self._backend.load(self._state, self._cookie_token, self._predecessor))
            except SessionStoreUnavailable as error:
                self._failure = error
                raise
        self.accessed = True

    @property
    def store_failure(self) -> SessionStoreUnavailable | None:
        """The outage that failed this session's first use in this request, if any.

        Adapters read it to answer a framework's generic 500 with the outage's 503.
        """
        return self._failure

    # The engine's view of the session: read and replaced whole, never loaded by it.

    def _snapshot(self) -> tuple[SessionState, dict[Any, Any]]:
        """Return the state and a copy of the values, without loading them."""
        state = self._state
        # dict.items: dict.copy would call the loading wrappers of keys and __getitem__.
        return state, (dict(dict.items(self)) if state.status is not Status.UNLOADED else {})

    def _adopt(self, state: SessionState, values: dict[Any, Any] | None = None) -> None:
        """Take the state the engine made, and the values it read or merged, if any."""
        self._state = state
        if values is not None:
            dict.clear(self)
            dict.update(self, values)

    def __repr__(self) -> str:
        status = self._state.status
        if status is Status.UNLOADED:
            return f"<{type(self).__name__} not loaded>"
        return f"<{type(self).__name__} {status.value} {dict.__repr__(self)}>"

    # Every way to read the values loads them first.
    __getitem__ = _loads_first(dict.__getitem__)

    def __contains__(self, key: object) -> bool:
        if self._state.status is Status.UNLOADED and key in self.never_stored:
            return False  # asked without loading: it cannot be in the record
        self._ensure_loaded()
        return dict.__contains__(self, key)

    __iter__ = _loads_first(dict.__iter__)
    __len__ = _loads_first(dict.__len__)
    __eq__ = _loads_first(dict.__eq__)
    __ne__ = _loads_first(dict.__ne__)
    __or__ = _loads_first(dict.__or__)
    __ror__ = _loads_first(dict.__ror__)
    __reversed__ = _loads_first(dict.__reversed__)
    get = _loads_first(dict.get)
    keys = _loads_first(dict.keys)
    values = _loads_first(dict.values)
    items = _loads_first(dict.items)
    copy = _loads_first(dict.copy)
    # Every way to change them also sets ``modified``, as Flask's CallbackDict does.
    __setitem__ = _changes(dict.__setitem__)
    __delitem__ = _changes(dict.__delitem__)
    __ior__ = _changes(dict.__ior__)
    pop = _changes(dict.pop, when=_holds)
    popitem = _changes(dict.popitem)
    setdefault = _changes(dict.setdefault, when=_lacks)
    update = _changes(dict.update)
    clear = _changes(dict.clear)
    __hash__ = None  # type: ignore[assignment]
