"""The storage seam: find, write and delete records in Redis.

:class:`RedisStore` knows nothing of HTTP or of what a record holds; the
session engine knows nothing of Redis. Every command touches a single key, so
the store works unchanged on Redis Cluster.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from operator import methodcaller
from typing import Any

from .clock import milliseconds, now_ms
from .commands import Commands
from .connections import client_from_url, is_cluster, translated_errors
from .durable import write_and_wait
from .errors import ConfigurationError, SessionStoreError
from .keys import KeySpace
from .options import Options, check
from .scripts import (
    COMPARE_AND_SET,
    DELETE_INDEX,
    MOVE,
    READ,
    TAKE_RECORD,
    UNLOCK,
    Write,
    WriteStatus,
)


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
        #: The names and shapes of this store's keys.
        self.keys = KeySpace(self.prefix, self.hash_tokens)
        self._cluster = is_cluster(client)
        self._commands = Commands(client)
        self._compare_and_set = client.register_script(COMPARE_AND_SET)
        self._unlock = client.register_script(UNLOCK)
        self._read = client.register_script(READ)
        self._take = client.register_script(TAKE_RECORD)
        self._move = client.register_script(MOVE)

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
        return self.keys.record(token)

    def id_of(self, key: str) -> str:
        """Return the store id in ``key``: the key without the prefix."""
        return key[len(self.prefix) :]

    def key_of(self, session_id: str) -> str:
        """Return the Redis key of the store id ``session_id``: the prefix and the id."""
        return self.prefix + session_id

    def fetch(self, keys: list[str]) -> list[tuple[bytes | None, int]]:
        """Each key's record and milliseconds to live (``(None, -2)``: none), in one round trip."""
        if not keys:
            return []
        with translated_errors():
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.get(key)
                pipe.pttl(key)
            answers = pipe.execute()
        return list(zip(answers[::2], answers[1::2]))

    def find(
        self, key: str, *, idle_expiry_ms: int | None = None, sliding: bool = False
    ) -> bytes | None:
        """Return the record at ``key``, or None.

        With ``idle_expiry_ms`` or ``sliding``, one script also moves the expiry, never
        past the record's deadline: by its own idle timeout, else to ``idle_expiry_ms``.

        .. versionchanged:: 0.2 ``sliding``, and the record's own idle timeout.
        """
        if idle_expiry_ms is None and not sliding:
            return self._commands.execute("GET", key)  # type: ignore[no-any-return]
        until = "" if idle_expiry_ms is None else idle_expiry_ms  # "": the record's own only
        return self._commands.script(self._read, [key], [now_ms(), until])  # type: ignore[no-any-return]

    def create(self, key: str, record: bytes, expiry_ms: int) -> bool:
        """Write a new record at ``key`` until the Unix time ``expiry_ms``, unless one is there.

        One SET NX PXAT. Return whether the record was written.
        """
        if not self.min_replicas:
            return bool(self._commands.execute("SET", key, record, "PXAT", expiry_ms, "NX"))
        with translated_errors():
            (written,) = self._durably(
                key, lambda pipe: pipe.set(key, record, pxat=expiry_ms, nx=True)
            )
            return bool(written)

    def replace(self, key: str, record: bytes, expiry_ms: int, *, expected: bytes) -> Write:
        """Overwrite the record at ``key`` if it is still the revision tagged ``expected``.

        One EVALSHA of a compare-and-set script, which sets the expiry too.
        """
        return self._compare_and_set_at(key, expected, record, expiry_ms)

    def remove(self, key: str, *, expected: bytes) -> Write:
        """Delete the record at ``key`` if it is still the revision tagged ``expected``."""
        return self._compare_and_set_at(key, expected, b"", 0)

    def move(
        self,
        key: str,
        *,
        expected: bytes,
        new_key: str,
        record: bytes,
        expiry_ms: int,
        leave: tuple[bytes, int] | None = None,
    ) -> Write:
        """Move a record: write ``record`` at ``new_key`` and delete ``key``, all or nothing.

        With ``leave``, ``key`` is left holding that record (a rotated token's
        forwarding record) until its expiry (Unix ms) instead. Only if ``key``
        still holds the revision ``expected``; the answer is about ``key``, and
        unless it is done nothing is left at ``new_key``. On one server it is
        one script, which writes ``new_key`` first, so a refused write (OOM)
        leaves ``key`` as it was. On a Cluster, and when replicas must
        acknowledge, ``new_key`` is written (and acknowledged) first and ``key``
        changed second, with ``new_key`` deleted again should that fail. A
        change of ``key`` that fewer replicas acknowledge still counts: the
        primary has it, and the client's only way on is the new token.
        """
        left, left_until = leave or (b"", 0)
        if not (self._cluster or self.min_replicas):
            answer = self._commands.script(
                self._move, [key, new_key], [expected, record, expiry_ms, left, left_until]
            )
            return Write.from_answer(answer)
        try:
            with translated_errors():
                if self.min_replicas:
                    self._durably(new_key, lambda pipe: pipe.set(new_key, record, pxat=expiry_ms))
                else:
                    self.client.set(new_key, record, pxat=expiry_ms)
            write = self._compare_and_set_at(key, expected, left, left_until, acknowledged=False)
        except BaseException:
            with contextlib.suppress(SessionStoreError):  # a copy nobody has the token of
                self.delete(new_key)
            raise
        if write.status is not WriteStatus.DONE:
            with contextlib.suppress(SessionStoreError):
                self.delete(new_key)
        return write

    def _compare_and_set_at(
        self, key: str, expected: bytes, record: bytes, expiry_ms: int, *, acknowledged: bool = True
    ) -> Write:
        # With acknowledged=False, replicas are waited for but their count is not required.
        if not self.min_replicas:
            answer = self._commands.script(
                self._compare_and_set, [key], [expected, record, expiry_ms]
            )
            return Write.from_answer(answer)
        with translated_errors():
            (answer,) = self._durably(
                key,
                lambda pipe: pipe.eval(COMPARE_AND_SET, 1, key, expected, record, expiry_ms),
                unless=lambda answer: answer != 1 or not acknowledged,
            )
        return Write.from_answer(answer)

    def _durably(
        self,
        key: str,
        queue: Callable[[Any], object],
        unless: Callable[[Any], bool] = lambda answer: not answer,
    ) -> list[Any]:
        """Write on ``key``'s primary and WAIT there: see :func:`.durable.write_and_wait`."""
        replicas, timeout_ms = self.min_replicas, self._replica_timeout_ms
        return write_and_wait(
            self.client, key, queue, replicas=replicas, timeout_ms=timeout_ms, unless=unless
        )

    def lock(self, key: str, *, ttl_ms: int = 2000) -> str | None:
        """Take the write lock of the record at ``key``; return its holder id, or None.

        A save that keeps losing the compare-and-set takes it, so the saves
        queued behind it land one at a time. It expires after ``ttl_ms``.
        """
        holder = secrets.token_hex(8)
        with translated_errors():
            taken = self.client.set(self.keys.lock(key), holder, nx=True, px=ttl_ms)
        return holder if taken else None

    def unlock(self, key: str, holder: str) -> None:
        """Release the write lock of ``key``, if ``holder`` still holds it."""
        with translated_errors():
            self._unlock(keys=[self.keys.lock(key)], args=[holder])

    def delete(self, *keys: str) -> int:
        """Delete the records at ``keys``, whatever they hold; return how many existed."""
        return sum(self.deleted(keys))

    def deleted(self, keys: Sequence[str]) -> list[bool]:
        """Delete the records at ``keys``, whatever they hold; return whether each existed.

        One DEL a key, pipelined when there are several, so it works on a Cluster.
        """
        with translated_errors():
            if self.min_replicas:
                return [
                    bool(self._durably(key, methodcaller("delete", key), unless=_never)[0])
                    for key in keys
                ]
            if len(keys) == 1:  # the common case, without a pipeline's cost
                return [bool(self.client.delete(keys[0]))]
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.delete(key)
            return [bool(found) for found in pipe.execute()]

    def take(self, key: str) -> bytes | None:
        """Delete the record at ``key`` and return it, or None; anything else there stays."""
        with translated_errors():
            if self.min_replicas:
                (blob,) = self._durably(
                    key, lambda pipe: pipe.eval(TAKE_RECORD, 1, key, 1), unless=_never
                )
                return blob  # type: ignore[no-any-return]
            return self._take(keys=[key], args=[1])  # type: ignore[no-any-return]

    def delete_written(
        self, keys: list[str], *, indexes: bool = False, returning: bool = False
    ) -> list[tuple[str, bytes | None]]:
        """Delete the records (or, with ``indexes``, the user indexes) at ``keys``.

        A key that holds something else is left alone. One pipelined round
        trip; return the keys deleted, each with its record if ``returning``.
        """
        script = DELETE_INDEX if indexes else TAKE_RECORD
        with translated_errors():
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.eval(script, 1, key, int(returning))
            answers = pipe.execute() if keys else []
        return [(k, a if isinstance(a, bytes) else None) for k, a in zip(keys, answers) if a]

    def scan_keys(self, batch: int = 500, *, of: str = "sessions") -> Iterator[list[str]]:
        """Yield the keys of the records under this store's prefix, ``batch`` at a time.

        Only keys of a record's shape are yielded; with ``of="indexes"``,
        those of a user index instead. Write locks are never yielded.
        """
        indexes = of == "indexes"
        match, fits = (
            (self.keys.index_pattern, self.keys.is_index)
            if indexes
            else (self.keys.record_pattern, self.keys.is_record)
        )
        with translated_errors():
            names = (
                key.decode() if isinstance(key, bytes) else key
                for key in self.client.scan_iter(match=match, count=batch)
            )
            chunk: list[str] = []
            for name in names:
                if fits(name):
                    chunk.append(name)
                    if len(chunk) == batch:
                        yield chunk
                        chunk = []
            if chunk:
                yield chunk


def _never(answer: object) -> bool:
    return False
