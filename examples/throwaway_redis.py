"""The demos' Redis: the one at ``SCS_REDIS_URL``, or a throwaway server of their own."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from flask_scs_redis.testing import RedisServer


@contextmanager
def redis_url_or_throwaway(env_var: str = "SCS_REDIS_URL") -> Iterator[str]:
    """Yield the Redis URL in ``env_var``, or run a throwaway server for the block.

    While the throwaway server runs, SIGTERM ends the block as Ctrl-C does,
    so the server is stopped however the demo ends.
    """
    configured = os.environ.get(env_var)
    if configured:
        yield configured
        return

    def exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
        sys.exit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        with RedisServer() as server:
            print(f"Started a throwaway Redis at {server.url}; it stops when this script does.")
            yield server.url
        print("Stopped the throwaway Redis.")
    finally:
        signal.signal(signal.SIGTERM, previous)
