"""Token rotation where Redis refuses writes, or must replicate them.

A rotation is a write. Where the store refuses writes (out of memory, a
read-only replica), a request that would only have rotated its token keeps
the old one and answers; the next request tries again. A real change beside
the rotation is an outage, as ever. With ``SCS_MIN_REPLICAS``, the replica
holds both the new record and the old token's forwarding record.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from werkzeug.test import Client

from flask_scs_redis.clock import now_ms
from flask_scs_redis.codec import encode
from flask_scs_redis.record import unpack_record
from flask_scs_redis.signals import session_renewed
from flask_scs_redis.testing import RedisServer
from flask_scs_redis.tokens import token_digest

from harness import cookie_token, edit_record, refusing_writes
from views import build_flask_app, build_wsgi_app

ROTATION = {"rotate_every": 30, "rotate_grace": 5}


@pytest.mark.parametrize("build", [build_flask_app, build_wsgi_app], ids=["flask", "wsgi"])
@pytest.mark.parametrize("fault", ["out of memory", "read-only replica"])
def test_a_read_that_would_rotate_answers_with_the_old_token_while_redis_refuses_writes(
    fresh_redis_server: RedisServer, build: Any, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    primary = fresh_redis_server.client()
    browser = Client(build(primary, **ROTATION))
    browser.get("/set?key=_user_id&value=alice")  # indexed too: the index scripts are refused
    browser.get("/incr")
    token = cookie_token(browser) or ""
    key = "scs:session:" + token_digest(token)
    edit_record(primary, key, issued_ms=int(time.time() * 1000) - 60_000)  # due
    renewals: list[dict[str, Any]] = []

    def renewed(sender: Any, **arguments: Any) -> None:
        renewals.append(arguments)

    session_renewed.connect(renewed)
    try:
        with refusing_writes(fresh_redis_server, fault) as target:
            reader = Client(build(target, **ROTATION))
            reader.set_cookie("session", token)
            caplog.set_level(logging.WARNING, "flask_scs_redis")
            response = reader.get("/read")
            response.close()
            assert (response.status_code, response.get_data()) == (200, b"1")
            assert "not given a new token" in caplog.text
            assert token not in caplog.text
            assert cookie_token(reader) == token  # no new cookie: the old token stays
            assert unpack_record(target.get(key) or b"").forward is None  # as it was
            assert renewals == []  # nothing was renewed, so nothing announced
            if fault == "out of memory":
                assert reader.get("/incr").status_code == 503  # a real change is an outage
                primary.config_set("maxmemory", 0)
                assert reader.get("/read").get_data() == b"1"
                assert cookie_token(reader) != token  # rotated once it could be
                assert [r["reason"] for r in renewals] == ["rotation"]
    finally:
        session_renewed.disconnect(renewed)


def test_a_rotation_waits_for_its_replica_which_then_holds_both_records(
    fresh_redis_server: RedisServer,
) -> None:
    # With SCS_MIN_REPLICAS the move takes two writes, each waited for: a
    # failover after the rotation must keep both the session and the old
    # token's grace.
    primary = fresh_redis_server.client()
    primary.config_set("repl-diskless-sync-delay", 0)
    with RedisServer() as replica_server:
        replica = replica_server.client()
        replica.replicaof("127.0.0.1", fresh_redis_server.port)
        while replica.info("replication").get("master_link_status") != "up":
            time.sleep(0.02)
        # A replica's first acknowledgement can be slow on a busy machine.
        app = build_flask_app(primary, SCS_MIN_REPLICAS=1, SCS_REPLICA_TIMEOUT=5, **ROTATION)
        browser = app.test_client()
        assert browser.get("/set?key=_user_id&value=alice").status_code == 200
        assert browser.get("/incr").status_code == 200
        old = cookie_token(browser) or ""
        edit_record(primary, "scs:session:" + token_digest(old), issued_ms=now_ms() - 60_000)
        assert browser.get("/read").text == "1"
        new = cookie_token(browser) or ""
        assert new != old
        on_replica = unpack_record(replica.get("scs:session:" + token_digest(new)) or b"")
        assert (on_replica.forward, on_replica.values) == (
            None,
            encode({"_user_id": "alice", "n": 1}),
        )
        forwarding = unpack_record(replica.get("scs:session:" + token_digest(old)) or b"")
        assert forwarding.forward is not None
        late = app.test_client()
        late.set_cookie("session", old)
        assert late.get("/incr").text == "2"  # through the old token, into the new record
        assert cookie_token(late) == new
        assert browser.get("/read").text == "2"
