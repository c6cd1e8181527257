"""The storage seam: find, write and delete records in Redis.

:class:`RedisStore` knows nothing of HTTP or of what a record holds; the
session engine knows nothing of Redis. Every command touches a single key, so
the store works unchanged on Redis Cluster.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta
from operator import methodcaller
from typing import Any

from .clock import milliseconds, now_ms
from .connections import client_from_url, translated_errors
from .errors import ConfigurationError, SessionStoreUnavailable
from .options import Options, check
from .scripts import COMPARE_AND_SET, INDEX_ADD, UNLOCK, Write
from .tokens import token_digest

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
# A store id: a hashed token or a token, both 43 base64url characters. Locks
# and user indexes share the prefix but never look like this.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")

#: Appended to a record's key to name its write lock. Record ids are
#: base64url, so no record key ends like this.
LOCK_SUFFIX = ":lock"


class RedisStore:
    """Keep session records in Redis, each under ``prefix + id`` with a TTL.

    ``client`` is any redis-py client (``Redis``, ``RedisCluster``, a
    Sentinel ``master_for`` client) that returns bytes, so it must not be
    created with ``decode_responses=True``. With ``hash_tokens`` (the
    default) the id is base64url(SHA-256(token)), so the keys in a Redis dump
    or a MONITOR log cannot be used as cookies. With ``min_replicas``, every
    write waits (WAIT, up to ``replica_timeout`` seconds) until that many
    replicas have it, and raises :class:`SessionStoreUnavailable` rather than
    claim a write that fewer acknowledged.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        client: Any,
        prefix: str = Options.prefix,
        hash_tokens: bool = Options.hash_tokens,
        *,
        min_replicas: int = Options.min_replicas,
        replica_timeout: timedelta | float = Options.replica_timeout,
    ) -> None:
        connection_kwargs = getattr(client, "get_connection_kwargs", None)
        if callable(connection_kwargs) and connection_kwargs().get("decode_responses"):
            raise ConfigurationError(
                "the Redis client decodes responses to str, but session records are"
                " binary: create it without decode_responses=True"
            )
        self.client = client
        self.prefix: str = check("prefix", prefix)
        self.hash_tokens: bool = check("hash_tokens", hash_tokens)
        #: Replicas that must acknowledge each write (WAIT) before it counts.
        self.min_replicas: int = check("min_replicas", min_replicas)
        self._replica_timeout_ms = milliseconds(check("replica_timeout", replica_timeout))
        self._match = _GLOB_SPECIAL.sub(r"\\\1", prefix)
        self._cluster = callable(getattr(client, "get_node_from_key", None))
        self._compare_and_set = client.register_script(COMPARE_AND_SET)
        self._unlock = client.register_script(UNLOCK)
        self._index_add = client.register_script(INDEX_ADD)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = Options.prefix,
        hash_tokens: bool = Options.hash_tokens,
        timeout: timedelta | float = Options.timeout,
        retries: int = Options.retries,
        min_replicas: int = Options.min_replicas,
        replica_timeout: timedelta | float = Options.replica_timeout,
        **client_kwargs: Any,
    ) -> RedisStore:
        """Build a store on a new client made from ``url``.

        ``redis+cluster://`` and ``redis+sentinel://`` URLs give a Cluster or a
        Sentinel-watched primary (see :mod:`.connections`). The client gives up
        on a connect or a reply after ``timeout`` seconds and retries a refused
        or dropped connection ``retries`` times; ``client_kwargs`` win over
        these. Only a Cluster client connects before the first command.

        .. versionchanged:: 0.1
            Added ``timeout`` and ``retries``.
        """
        client = client_from_url(
            url,
            timeout=check("timeout", timeout).total_seconds(),
            retries=check("retries", retries),
            **client_kwargs,
        )
        return cls(
            client,
            prefix=prefix,
            hash_tokens=hash_tokens,
            min_replicas=min_replicas,
            replica_timeout=replica_timeout,
        )

    def key_for(self, token: str) -> str:
        """Return the Redis key that holds the record of ``token``."""
        return self.prefix + (token_digest(token) if self.hash_tokens else token)

    def id_of(self, key: str) -> str:
        """Return the store id in ``key``: the key without the prefix."""
        return key[len(self.prefix) :]

    def key_of(self, session_id: str) -> str:
        """Return the Redis key of the store id ``session_id``: the prefix and the id."""
        return self.prefix + session_id

    def fetch(self, keys: list[str]) -> list[tuple[bytes | None, int]]:
        """Return each key's record and milliseconds to live, in one pipelined round trip.

        A missing record comes back as ``(None, -2)``.
        """
        if not keys:
            return []
        with translated_errors():
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.get(key)
                pipe.pttl(key)
            answers = pipe.execute()
        return list(zip(answers[::2], answers[1::2]))

    def index_key(self, user: str) -> str:
        """Return the key of ``user``'s index: a sorted set of store ids by deadline."""
        return f"{self.prefix}user:{user}"

    def index_add(
        self, user: str, session_id: str, *, deadline_ms: int, keep_at_most: int | None = None
    ) -> list[str]:
        """Index ``session_id`` under ``user``; return the ids pushed out by ``keep_at_most``.

        One script on the index key: it prunes entries past their deadline,
        adds this one, drops the oldest past ``keep_at_most``, and keeps the
        key alive until its last entry's deadline. The caller deletes the
        sessions of the ids it returns.
        """
        with translated_errors():
            evicted = self._index_add(
                keys=[self.index_key(user)],
                args=[session_id, deadline_ms, now_ms(), keep_at_most or 0],
            )
        return [entry.decode() if isinstance(entry, bytes) else entry for entry in evicted]

    def index_remove(self, user: str, *session_ids: str) -> None:
        """Take ``session_ids`` out of ``user``'s index."""
        if session_ids:
            with translated_errors():
                self.client.zrem(self.index_key(user), *session_ids)

    def index_members(self, user: str) -> list[str]:
        """Return the ids indexed under ``user`` whose deadline has not passed."""
        with translated_errors():
            pipe = self.client.pipeline(transaction=False)
            pipe.zremrangebyscore(self.index_key(user), "-inf", now_ms())
            pipe.zrange(self.index_key(user), 0, -1)
            _, members = pipe.execute()
        return [entry.decode() if isinstance(entry, bytes) else entry for entry in members]

    def find(self, key: str, *, idle_expiry_ms: int | None = None) -> bytes | None:
        """Return the record at ``key``, or None.

        With ``idle_expiry_ms`` the key's expiry moves to that Unix time in the
        same command (GETEX), so sliding the idle timeout costs no extra round
        trip.
        """
        with translated_errors():
            if idle_expiry_ms is None:
                return self.client.get(key)  # type: ignore[no-any-return]
            return self.client.getex(key, pxat=idle_expiry_ms)  # type: ignore[no-any-return]

    def create(self, key: str, record: bytes, expiry_ms: int) -> bool:
        """Write a new record at ``key``, expiring at the Unix time ``expiry_ms``.

        One SET NX PXAT: nothing is written if the key exists. Return whether
        the record was written.
        """
        with translated_errors():
            if not self.min_replicas:
                return bool(self.client.set(key, record, pxat=expiry_ms, nx=True))
            (written,) = self._durably(
                key, lambda pipe: pipe.set(key, record, pxat=expiry_ms, nx=True)
            )
            return bool(written)

    def replace(self, key: str, record: bytes, expiry_ms: int, *, expected: bytes) -> Write:
        """Overwrite the record at ``key`` if it is still the revision tagged ``expected``.

        One EVALSHA of a compare-and-set script, with the expiry set in the
        same write.
        """
        return self._compare_and_set_at(key, expected, record, expiry_ms)

    def remove(self, key: str, *, expected: bytes) -> Write:
        """Delete the record at ``key`` if it is still the revision tagged ``expected``."""
        return self._compare_and_set_at(key, expected, b"", 0)

    def move(
        self, key: str, *, expected: bytes, new_key: str, record: bytes, expiry_ms: int
    ) -> Write:
        """Write ``record`` at ``new_key``, and delete ``key`` if it is still ``expected``.

        Both go in one round trip; on a Cluster, or when replicas must
        acknowledge, in two, as the keys may live on different primaries. The
        answer is about ``key``; unless it is done, the caller decides what
        becomes of ``new_key``.
        """
        with translated_errors():
            if self.min_replicas:
                self._durably(new_key, lambda pipe: pipe.set(new_key, record, pxat=expiry_ms))
                return self._compare_and_set_at(key, expected, b"", 0)
            if self._cluster:  # a cluster pipeline cannot carry a script
                self.client.set(new_key, record, pxat=expiry_ms)
                return self._compare_and_set_at(key, expected, b"", 0)
            pipe = self.client.pipeline(transaction=False)
            pipe.set(new_key, record, pxat=expiry_ms)
            # EVAL, not EVALSHA: with a script a pipeline first asks SCRIPT EXISTS.
            pipe.eval(COMPARE_AND_SET, 1, key, expected, b"", 0)
            _, answer = pipe.execute()
        return Write.from_answer(answer)

    def _compare_and_set_at(
        self, key: str, expected: bytes, record: bytes, expiry_ms: int
    ) -> Write:
        with translated_errors():
            if not self.min_replicas:
                answer = self._compare_and_set(keys=[key], args=[expected, record, expiry_ms])
            else:
                (answer,) = self._durably(
                    key,
                    lambda pipe: pipe.eval(COMPARE_AND_SET, 1, key, expected, record, expiry_ms),
                    unless=lambda answer: answer != 1,
                )
        return Write.from_answer(answer)

    def _durably(
        self,
        key: str,
        queue: Callable[[Any], object],
        unless: Callable[[Any], bool] = lambda answer: not answer,
    ) -> list[Any]:
        """Run one write on ``key``'s primary, then WAIT for ``min_replicas`` on that connection.

        WAIT counts the writes of its own connection, so both go in one
        pipeline to the primary that holds ``key``. A write that ``unless``
        says did not happen needs no acknowledgement.

        :raises SessionStoreUnavailable: fewer replicas acknowledged in time;
            the write is not claimed as done.
        """
        primary = (
            self.client.get_node_from_key(key).redis_connection if self._cluster else self.client
        )
        pipe = primary.pipeline(transaction=False)
        queue(pipe)
        pipe.wait(self.min_replicas, self._replica_timeout_ms)
        *results, acknowledged = list(pipe.execute())
        if not unless(results[0]) and acknowledged < self.min_replicas:
            raise SessionStoreUnavailable(
                f"only {acknowledged} of the {self.min_replicas} replicas required"
                f" acknowledged the write within {self._replica_timeout_ms} ms"
            )
        return list(results)

    def lock(self, key: str, *, ttl_ms: int = 2000) -> str | None:
        """Take the write lock of the record at ``key``; return its holder id, or None.

        Saves normally need no lock. A save that keeps losing the
        compare-and-set takes this lock, so the saves that queue behind it
        go one at a time and each one lands. The lock expires by itself
        after ``ttl_ms``, should its holder die.
        """
        holder = secrets.token_hex(8)
        with translated_errors():
            taken = self.client.set(key + LOCK_SUFFIX, holder, nx=True, px=ttl_ms)
        return holder if taken else None

    def unlock(self, key: str, holder: str) -> None:
        """Release the write lock of ``key``, if ``holder`` still holds it."""
        with translated_errors():
            self._unlock(keys=[key + LOCK_SUFFIX], args=[holder])

    def delete(self, *keys: str) -> int:
        """Delete the records at ``keys``, whatever they hold; return how many existed.

        One DEL a key, pipelined when there are several, so it works on a Cluster.
        """
        with translated_errors():
            if self.min_replicas:
                return sum(
                    self._durably(key, methodcaller("delete", key), unless=_never)[0]
                    for key in keys
                )
            if len(keys) == 1:  # the common case, without a pipeline's cost
                return int(self.client.delete(keys[0]))
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.delete(key)
            return sum(pipe.execute())

    def take(self, key: str) -> bytes | None:
        """Delete the record at ``key`` and return what it held (GETDEL), or None."""
        with translated_errors():
            if self.min_replicas:
                (blob,) = self._durably(key, methodcaller("getdel", key), unless=_never)
                return blob  # type: ignore[no-any-return]
            return self.client.getdel(key)  # type: ignore[no-any-return]

    def scan_keys(self, batch: int = 500, *, of: str = "sessions") -> Iterator[list[str]]:
        """Yield the keys of the records under this store's prefix, ``batch`` at a time.

        Write locks and user indexes share the prefix and are left out; with
        ``of="indexes"`` the user indexes are yielded instead.
        """
        match = self._match + ("user:*" if of == "indexes" else "*")
        with translated_errors():
            names = (
                key.decode() if isinstance(key, bytes) else key
                for key in self.client.scan_iter(match=match, count=batch)
            )
            chunk: list[str] = []
            for name in names:
                if of == "indexes" or _SESSION_ID.fullmatch(self.id_of(name)):
                    chunk.append(name)
                    if len(chunk) == batch:
                        yield chunk
                        chunk = []
            if chunk:
                yield chunk


def _never(answer: object) -> bool:
    return False
