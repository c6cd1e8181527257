"""Token rotation under real load: gunicorn, clients that share a session, and a purge.

Drives the ``rotation`` scenario of ``benchmarks/load_test.py`` on a server
that rotates tokens every 0.4 s and gives an old token 0.25 s of grace.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import pytest
import redis

from flask_scs_redis.testing import RedisServer

from harness import load_script

ROTATE_EVERY = 0.4
ROTATE_GRACE = 0.25


class Served(NamedTuple):
    load_test: ModuleType
    adapter: str
    port: int
    redis_url: str
    #: gunicorn's error log, where the app's warnings and errors go too.
    log: Path


@pytest.fixture(scope="module", params=["flask", "wsgi"])
def served(
    request: pytest.FixtureRequest,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """The load test's app behind an adapter, under gunicorn, rotating tokens."""
    pytest.importorskip("gunicorn")
    load_test = load_script("benchmarks/load_test.py")
    adapter = str(request.param)
    log = tmp_path_factory.mktemp("rotation") / "gunicorn.log"
    with (
        log.open("w") as server_log,
        load_test.serve(
            redis_server.url,
            adapter,
            server_log=server_log,
            rotate_every=ROTATE_EVERY,
            rotate_grace=ROTATE_GRACE,
        ) as port,
    ):
        yield Served(load_test, adapter, port, redis_server.url, log)


def errors_logged(log: Path) -> list[str]:
    """The lines of gunicorn's error log that are not its own INFO lines."""
    return [line for line in log.read_text().splitlines() if "[INFO]" not in line]


def test_clients_sharing_a_session_across_rotations_are_never_logged_out_nor_lose_a_count(
    served: Served, redis_client: redis.Redis
) -> None:
    report = served.load_test.rotation(served.port, clients=4, seconds=2.5, adapter=served.adapter)
    assert report.rotations >= 3
    assert report.logouts == 0
    assert report.lost_updates == 0
    assert report.server_errors == 0
    assert report.other_errors == 0
    # Most clients came with the old token after each rotation, and took up the new one.
    assert report.tokens_taken_up >= report.rotations * 3
    assert errors_logged(served.log) == []


def test_log_out_everywhere_during_rotations_leaves_no_token_that_opens_a_session(
    served: Served, redis_client: redis.Redis
) -> None:
    report = served.load_test.rotation_race(
        served.port,
        served.redis_url,
        devices=2,
        clients_per_device=2,
        rotations_before_purge=3,
        adapter=served.adapter,
    )
    assert report.survivors_by_token == 0
    assert report.survivors_scanned == 0
    assert report.survivors_listed == 0
    assert report.rotations >= 3
    assert report.purged >= 2  # both sessions were live, and were ended
    assert report.tokens_in_grace > 0  # old tokens that still led somewhere were tried too
    assert report.logouts == 0  # before the purge
    assert report.lost_updates == 0
    assert report.server_errors == 0
    assert report.other_errors == 0
    assert errors_logged(served.log) == []
