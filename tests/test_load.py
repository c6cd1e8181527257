"""A small run of the load test: gunicorn, overlapping requests, nothing lost."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import redis

from flask_scs_redis.testing import RedisServer

LOAD_TEST = Path(__file__).parent.parent / "benchmarks" / "load_test.py"


def load_test_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("load_test", LOAD_TEST)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["load_test"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("adapter", ["flask", "wsgi"])
def test_many_clients_on_one_session_lose_no_update(
    adapter: str, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    pytest.importorskip("gunicorn")
    load_test = load_test_module()
    with load_test.serve(redis_server.url, adapter) as port:
        report = load_test.load(port, clients=16, requests=15, sessions=1, adapter=adapter)
    assert report.requests_sent == 240
    assert report.server_errors == 0
    assert report.other_errors == 0
    assert report.keys_lost == 0
