"""Small runs of the load test: gunicorn, overlapping requests, nothing lost, nothing left."""

from __future__ import annotations

import pytest
import redis

from flask_scs_redis.testing import RedisServer

from harness import load_script


@pytest.mark.parametrize("adapter", ["flask", "wsgi"])
def test_many_clients_on_one_session_lose_no_update(
    adapter: str, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    pytest.importorskip("gunicorn")
    load_test = load_script("benchmarks/load_test.py")
    with load_test.serve(redis_server.url, adapter) as port:
        report = load_test.load(port, clients=16, requests=15, sessions=1, adapter=adapter)
    assert report.requests_sent == 240
    assert report.server_errors == 0
    assert report.other_errors == 0
    assert report.keys_lost == 0


@pytest.mark.parametrize("adapter", ["flask", "wsgi"])
def test_renewals_racing_log_out_everywhere_leave_no_session(
    adapter: str, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    pytest.importorskip("gunicorn")
    load_test = load_script("benchmarks/load_test.py")
    with load_test.serve(redis_server.url, adapter) as port:
        report = load_test.race(
            port, redis_server.url, rounds=12, users=4, clients_per_user=3, adapter=adapter
        )
    assert report.purges == 48
    assert report.renewals > 0
    assert report.remembers > 0
    assert report.survivors == 0
    assert report.keys_lost == 0
    assert report.server_errors == 0
    assert report.outages == 0
    assert report.other_errors == 0
