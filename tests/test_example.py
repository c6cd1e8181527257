"""The demo app: counter, login with renew(), logout with destroy(), flash."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from flask_scs_redis.testing import RedisServer

EXAMPLE = Path(__file__).parent.parent / "examples" / "flask_app.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flask_app_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def visits(page: str) -> int:
    found = re.search(r"Visits in this session: (\d+)", page)
    assert found is not None, page
    return int(found.group(1))


def test_the_demo_counts_logs_in_with_a_new_token_and_logs_out(
    redis_server: RedisServer, redis_client: object
) -> None:
    app = load_example().create_app(redis_server.url)
    client = app.test_client()
    assert visits(client.get("/").text) == 1
    assert visits(client.get("/").text) == 2
    before_login = client.get_cookie("session").value  # type: ignore[union-attr]

    page = client.post("/login", data={"username": "alice"}, follow_redirects=True).text
    assert "Welcome, alice!" in page
    assert "Logged in as <b>alice</b>" in page
    assert visits(page) == 3
    assert client.get_cookie("session").value != before_login  # type: ignore[union-attr]

    client.post("/logout")
    assert client.get_cookie("session") is None
    page = client.get("/").text
    assert visits(page) == 1
    assert "alice" not in page
