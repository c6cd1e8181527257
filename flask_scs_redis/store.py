"""The storage seam: find, commit and delete records in Redis.

:class:`RedisStore` knows nothing of HTTP or of what a record holds; the
session engine knows nothing of Redis. Every command touches a single key, so
the store works unchanged on Redis Cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
import redis.exceptions

from .errors import ConfigurationError, SessionStoreError, SessionStoreUnavailable
from .tokens import token_digest

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


class RedisStore:
    """Keep session records in Redis, each under ``prefix + id`` with a TTL.

    ``client`` is any redis-py client (``Redis``, ``RedisCluster``, a
    Sentinel ``master_for`` client) that returns bytes, so it must not be
    created with ``decode_responses=True``. With ``hash_tokens`` (the
    default) the id is base64url(SHA-256(token)), so the keys in a Redis dump
    or a MONITOR log cannot be used as cookies.

    .. versionadded:: 0.1
    """

    def __init__(self, client: Any, prefix: str = "scs:session:", hash_tokens: bool = True) -> None:
        if not isinstance(prefix, str):
            raise ConfigurationError(f"the key prefix must be a str, not {type(prefix).__name__}")
        if not isinstance(hash_tokens, bool):
            raise ConfigurationError("hash_tokens must be True or False")
        connection_kwargs = getattr(client, "get_connection_kwargs", None)
        if callable(connection_kwargs) and connection_kwargs().get("decode_responses"):
            raise ConfigurationError(
                "the Redis client decodes responses to str, but session records are"
                " binary: create it without decode_responses=True"
            )
        self.client = client
        self.prefix = prefix
        self.hash_tokens = hash_tokens
        self._match = _GLOB_SPECIAL.sub(r"\\\1", prefix) + "*"

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "scs:session:",
        hash_tokens: bool = True,
        **client_kwargs: Any,
    ) -> RedisStore:
        """Build a store on a new ``redis.Redis`` client made from ``url``.

        ``client_kwargs`` go to :meth:`redis.Redis.from_url`. No connection is
        made until the first command.
        """
        try:
            client = redis.Redis.from_url(url, **client_kwargs)
        except ValueError as exc:
            raise ConfigurationError(f"invalid Redis URL {url!r}: {exc}") from exc
        return cls(client, prefix=prefix, hash_tokens=hash_tokens)

    def key_for(self, token: str) -> str:
        """Return the Redis key that holds the record of ``token``."""
        return self.prefix + (token_digest(token) if self.hash_tokens else token)

    def find(self, key: str, *, idle_expiry_ms: int | None = None) -> bytes | None:
        """Return the record at ``key``, or None.

        With ``idle_expiry_ms`` the key's expiry moves to that Unix time in the
        same command (GETEX), so sliding the idle timeout costs no extra round
        trip.
        """
        with _translated_errors():
            if idle_expiry_ms is None:
                return self.client.get(key)  # type: ignore[no-any-return]
            return self.client.getex(key, pxat=idle_expiry_ms)  # type: ignore[no-any-return]

    def commit(
        self,
        key: str,
        record: bytes,
        expiry_ms: int,
        *,
        new: bool = False,
        replaces: str | None = None,
    ) -> bool:
        """Write ``record`` at ``key``, expiring at the Unix time ``expiry_ms``.

        The expiry is set in the same SET. With ``new`` the write happens only
        if the key does not exist; otherwise only if it still does, so a
        session ended elsewhere is not written back. ``replaces`` names a key
        to delete in the same round trip (token renewal). Return whether the
        record was written.
        """
        with _translated_errors():
            if replaces is None:
                written = self.client.set(key, record, pxat=expiry_ms, nx=new, xx=not new)
            else:
                pipe = self.client.pipeline(transaction=False)
                pipe.set(key, record, pxat=expiry_ms, nx=new, xx=not new)
                pipe.delete(replaces)
                written, _ = pipe.execute()
        return bool(written)

    def delete(self, key: str) -> None:
        """Delete the record at ``key``, if there is one."""
        with _translated_errors():
            self.client.delete(key)

    def scan(self, batch: int = 500) -> Iterator[tuple[str, bytes]]:
        """Yield ``(key, record)`` for every record under this store's prefix.

        Keys are found with SCAN, never KEYS, and their records fetched in
        pipelined batches. Records that expire during the scan are skipped.
        """
        with _translated_errors():
            keys = self.client.scan_iter(match=self._match, count=batch)
            while True:
                chunk = [key for _, key in zip(range(batch), keys)]
                if not chunk:
                    return
                pipe = self.client.pipeline(transaction=False)
                for key in chunk:
                    pipe.get(key)
                for key, record in zip(chunk, pipe.execute()):
                    if record is not None:
                        yield (key.decode() if isinstance(key, bytes) else key), record


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Re-raise redis-py errors as this package's store errors."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise SessionStoreUnavailable(f"the session store cannot be reached: {exc}") from exc
    except redis.exceptions.RedisError as exc:
        raise SessionStoreError(f"the session store failed: {exc}") from exc
