"""The benchmark's contenders, run briefly: Redis commands per request, never timings."""

from __future__ import annotations

import os
from typing import Any

import pytest
import redis

from flask_scs_redis.testing import RedisServer

from harness import load_script


@pytest.fixture
def results(
    redis_server: RedisServer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    pytest.importorskip("flask_session")
    monkeypatch.setenv("BENCH_REDIS_URL", redis_server.url)
    bench = load_script("benchmarks/bench.py")
    measured: dict[str, Any] = bench.in_process(redis_client, requests=20)
    table = bench.ratios(measured)
    assert set(table) == set(bench.SCENARIOS)
    return measured


def test_this_project_meets_its_round_trip_targets(results: dict[str, Any]) -> None:
    for contender in ("scs", "scs-wsgi"):
        commands = {scenario: cell["commands"] for scenario, cell in results[contender].items()}
        assert commands == {
            "none": 0,
            "read": 1,
            "write": 2,
            "new": 1,
            "idle-read": 1,
            "mixed": 1.0,  # 60 % x 1 + 20 % x 0 + 20 % x 2
        }, contender


def test_the_anchors_behave_as_the_benchmark_assumes(results: dict[str, Any]) -> None:
    assert {cell["commands"] for cell in results["cookie"].values()} == {0}
    # Flask-Session 0.8 reads and rewrites on every request that carries a cookie.
    assert results["flask-session"]["none"]["commands"] == 2
    assert results["flask-session"]["read"]["commands"] == 2
    assert os.environ["BENCH_REDIS_URL"]


def test_encryption_at_rest_costs_no_command(results: dict[str, Any]) -> None:
    for encrypted, adapter in (("scs+enc", "scs"), ("scs-wsgi+enc", "scs-wsgi")):
        for scenario in ("read", "write"):
            on, off = results[encrypted][scenario], results[adapter][scenario]
            assert on["commands"] == off["commands"], (encrypted, scenario)
