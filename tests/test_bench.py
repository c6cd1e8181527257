"""The benchmark's contenders, run briefly: Redis commands per request, never timings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from flask_scs_redis.testing import RedisServer

from harness import load_script


@pytest.fixture(scope="module")
def results() -> Iterator[dict[str, Any]]:
    """One short run of every contender, on a server of its own, shared by this module's tests."""
    pytest.importorskip("flask_session")
    with RedisServer() as server, pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("BENCH_REDIS_URL", server.url)
        bench = load_script("benchmarks/bench.py")
        client = server.client()
        measured: dict[str, Any] = bench.in_process(client, requests=20)
        assert set(bench.ratios(measured)) == set(bench.SCENARIOS)
        yield measured
        client.close()


def test_this_project_meets_its_round_trip_targets(results: dict[str, Any]) -> None:
    for contender in ("scs", "scs-wsgi"):
        commands = {scenario: cell["commands"] for scenario, cell in results[contender].items()}
        assert commands == {
            "none": 0,
            "read": 1,
            "read-permanent": 1,
            "write": 2,
            "new": 1,
            "idle-read": 1,
            "mixed": 1.0,  # 60 % x 1 + 20 % x 0 + 20 % x 2
        }, contender


def test_the_floor_sends_the_commands_the_extension_sends(results: dict[str, Any]) -> None:
    for scenario, scs in results["scs"].items():
        floor = results["floor"][scenario]
        assert floor["sent"] == scs["sent"], scenario
        assert floor["in_scripts"] == scs["in_scripts"], scenario
        assert floor["commands"] == scs["commands"], scenario


def test_the_baselines_without_redis_send_nothing(results: dict[str, Any]) -> None:
    for contender in ("bare", "cookie"):
        assert {cell["commands"] for cell in results[contender].values()} == {0}, contender


def test_the_anchors_behave_as_the_benchmark_assumes(results: dict[str, Any]) -> None:
    # Flask-Session 0.8 reads and rewrites on every request that carries a cookie.
    assert results["flask-session"]["none"]["commands"] == 2
    assert results["flask-session"]["read"]["commands"] == 2
    assert os.environ["BENCH_REDIS_URL"]


def test_encryption_at_rest_costs_no_command(results: dict[str, Any]) -> None:
    for encrypted, adapter in (("scs+enc", "scs"), ("scs-wsgi+enc", "scs-wsgi")):
        for scenario in ("read", "write"):
            on, off = results[encrypted][scenario], results[adapter][scenario]
            assert on["commands"] == off["commands"], (encrypted, scenario)
