"""Encryption at rest: what a Redis dump holds, what tampering gets, switching on and off."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import warnings
from typing import Any

import msgpack
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from flask_scs_redis import (
    ConfigurationError,
    ConfigurationWarning,
    RedisStore,
    SessionAdmin,
    SessionEngine,
)
from flask_scs_redis.codec import encode
from flask_scs_redis.record import (
    CorruptRecordError,
    Record,
    pack_record,
    read_record,
    unpack_record,
)
from flask_scs_redis.sealing import SEALED, Sealer, SealError, is_sealed
from flask_scs_redis.testing import RedisServer
from flask_scs_redis.tokens import new_token, token_digest

from harness import ROOT, Count, MakeClient, cookie_token, edit_record, refusing_writes
from views import build_flask_app, build_wsgi_app

SECRET = "s" * 32
OTHER_SECRET = "o" * 32
MARKER = "MARKER-7f3a9c"
USER = "alice@example.org"
ENCRYPTED = {"encrypt": True, "encryption_keys": [SECRET]}
REQUIRED = {**ENCRYPTED, "encryption_required": True}


def record_key(client: Client) -> str:
    token = cookie_token(client)
    assert token is not None
    return "scs:session:" + token_digest(token)


def stored_record(redis_client: redis.Redis, client: Client) -> Record:
    """The record of ``client``'s session as stored: values sealed or not."""
    blob = redis_client.get(record_key(client))
    assert blob is not None
    return unpack_record(blob)


def everything_in(redis_client: redis.Redis) -> bytes:
    """Every key name, DUMP and readable content in Redis, end to end."""
    found = []
    for key in redis_client.scan_iter(count=1000):
        found += [key, redis_client.dump(key) or b""]
        kind = redis_client.type(key)
        if kind == b"string":
            found.append(redis_client.get(key) or b"")
        elif kind == b"zset":
            found += redis_client.zrange(key, 0, -1)
    return b"\n".join(found)


def make_sessions(make_client: MakeClient, **options: Any) -> list[Client]:
    """Browsers that log in, store markers, renew, set an expiry and merge."""
    clients = []
    for n in range(3):
        client = make_client(**options)
        client.get(f"/set?key=name&value={MARKER}-{n}")
        client.get(f"/set?key=_user_id&value={USER}")
        client.get("/incr")
        client.get(f"/set?key=cart&value={MARKER}-cart")
        client.get("/renew")
        client.get("/expiry?lifetime=3600")
        client.get("/incr")
        clients.append(client)
    return clients


@pytest.fixture(autouse=True)
def uncompressed_dumps(redis_client: redis.Redis) -> None:
    # DUMP compresses strings with LZF, which could hide a marker from a byte search.
    redis_client.config_set("rdbcompression", "no")


# -- a dump reveals nothing ------------------------------------------------------------


@pytest.mark.parametrize("encrypted", [True, False], ids=["on", "off"])
def test_no_key_or_value_in_redis_holds_a_marker_or_the_user(
    make_client: MakeClient, redis_client: redis.Redis, encrypted: bool
) -> None:
    clients = make_sessions(make_client, **(ENCRYPTED if encrypted else {}))
    assert all(c.get("/read").get_data() == b"2" for c in clients)  # live and readable
    dump = everything_in(redis_client)
    needles = [MARKER.encode(), USER.encode(), token_digest(USER).encode()]
    found = [needle for needle in needles if needle in dump]
    if encrypted:
        assert found == []
        assert len(redis_client.keys("*:user")) == 1  # the index is there, keyed
    else:  # the test can see them: without encryption they are all there
        assert found == needles


def test_monitor_sees_no_marker_or_user_either(
    make_client: MakeClient, redis_client: redis.Redis, redis_server: Any
) -> None:
    seen: list[str] = []
    ready = threading.Event()
    done = threading.Event()

    def watch() -> None:
        with redis_server.client().monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                seen.append(str(command["command"]))
                if "STOP-WATCHING" in command["command"]:
                    done.set()
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    ready.wait(5)
    make_sessions(make_client, **ENCRYPTED)
    redis_client.get("STOP-WATCHING")
    done.wait(5)
    assert len(seen) > 20
    assert not [line for line in seen if MARKER in line or USER in line]


def test_records_are_sealed_and_values_read_back_with_their_types(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(**ENCRYPTED)
    client.get(f"/set?key=name&value={MARKER}")
    client.get("/incr")
    record = stored_record(redis_client, client)
    assert record.sealed and is_sealed(record.values)
    assert client.get("/read").get_data() == b"1"


# -- tampering ------------------------------------------------------------------------


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


TAMPERINGS = {
    "ciphertext": lambda r: {"values": flip(r.values, 20)},
    "tag": lambda r: {"values": flip(r.values, len(r.values) - 1)},
    "nonce": lambda r: {"values": flip(r.values, 8)},
    "key id": lambda r: {"values": flip(r.values, 3)},
    "sealing version": lambda r: {"values": flip(r.values, 1)},
    "truncated": lambda r: {"values": r.values[:20]},
    "deadline": lambda r: {"deadline_ms": r.deadline_ms + 3_600_000},
    "created": lambda r: {"created_ms": r.created_ms - 1},
    "last seen": lambda r: {"last_seen_ms": r.last_seen_ms + 1},
    "description": lambda r: {"description": "Evil on Linux"},
    "own lifetime": lambda r: {"lifetime_ms": 10**12},
    "own idle timeout": lambda r: {"idle_ms": 0},
    "no secret's key id": lambda r: {"values": r.values[:2] + b"\0" * 4 + r.values[6:]},
}


@pytest.mark.parametrize("tampering", list(TAMPERINGS), ids=list(TAMPERINGS))
def test_a_tampered_record_is_a_new_session_deleted_with_a_warning(
    make_client: MakeClient,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    tampering: str,
) -> None:
    client = make_client(**ENCRYPTED)
    client.get(f"/set?key=name&value={MARKER}")
    client.get("/expiry?lifetime=7200&idle=600")  # so the own lifetime and idle fields exist
    client.get("/describe?as=Chrome")
    key = record_key(client)
    token = cookie_token(client)
    record = unpack_record(redis_client.get(key) or b"")
    edit_record(redis_client, key, **TAMPERINGS[tampering](record))
    caplog.set_level(logging.WARNING, "flask_scs_redis")
    assert client.get("/read").get_data() == b"None"
    assert redis_client.exists(key) == 0
    assert "deleted an unreadable session record" in caplog.text
    assert token is not None and token not in caplog.text
    assert MARKER not in caplog.text and SECRET not in caplog.text
    assert client.get("/incr").status_code == 200  # the browser goes on with a new session


def test_the_revision_is_authenticated_too(redis_client: redis.Redis) -> None:
    sealer = Sealer([SECRET.encode()])
    token = new_token()
    blob, _ = pack_record(Record(4, 10**13, 1, encode({"a": MARKER})), sealer, token)
    tampered = blob.replace(b"\x04", b"\x05", 1)  # the revision follows the format byte
    assert read_record(blob, sealer, token)[1] == {"a": MARKER}
    with pytest.raises(CorruptRecordError, match="authentication"):
        read_record(tampered, sealer, token)


# Any single-bit change anywhere in a sealed record is caught, or changes nothing read.
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.dictionaries(st.text(max_size=5), st.text(max_size=30), max_size=4), data=st.data()
)
def test_no_single_bit_flip_of_a_record_goes_unnoticed(
    values: dict[str, str], data: st.DataObject
) -> None:
    sealer = Sealer([SECRET.encode()])
    token = new_token()
    original = Record(3, 10**13, 5, encode({"k": MARKER, **values}), 6, "desc", 9_000, 0)
    blob, _ = pack_record(original, sealer, token)
    at = data.draw(st.integers(0, len(blob) - 1))
    bit = data.draw(st.integers(0, 7))
    tampered = blob[:at] + bytes([blob[at] ^ (1 << bit)]) + blob[at + 1 :]
    try:
        record, read = read_record(tampered, sealer, token)
    except CorruptRecordError:
        return
    expected = original._replace(values=b"", tag=b"", sealed=True)
    assert record._replace(values=b"", tag=b"") == expected
    assert read == {"k": MARKER, **values}


# -- one token's key opens one record --------------------------------------------------


def test_a_record_moved_under_another_tokens_key_does_not_open(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    victim, thief = make_client(**ENCRYPTED), make_client(**ENCRYPTED)
    victim.get(f"/set?key=name&value={MARKER}")
    thief.get("/set?key=name&value=thief")
    redis_client.set(record_key(thief), redis_client.get(record_key(victim)) or b"")
    assert thief.get("/read").get_data() == b"None"
    assert redis_client.exists(record_key(thief)) == 0  # deleted as unreadable
    assert victim.get("/set?key=n&value=1").status_code == 200  # the victim's is intact


def test_sealed_values_open_only_with_their_token_and_a_listed_secret() -> None:
    token, other = new_token(), new_token()
    sealed = Sealer([SECRET.encode()]).seal(token, b"\x81\xa1k\xa1v", b"meta")
    assert Sealer([SECRET.encode()]).open(token, sealed, b"meta") == b"\x81\xa1k\xa1v"
    for sealer, key in [
        (Sealer([SECRET.encode()]), other),  # another token
        (Sealer([OTHER_SECRET.encode()]), token),  # a secret that did not seal it
        (Sealer(), token),  # no secret at all
    ]:
        with pytest.raises(SealError):
            sealer.open(key, sealed, b"meta")
    with pytest.raises(SealError):
        Sealer([SECRET.encode()]).open(token, sealed, b"other meta")


def attempt_to_open(token: str, sealed: bytes, metadata: bytes, salt: bytes | None) -> bytes:
    """Open sealed values as a thief would, from the token and a guessed secret, by the spec."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    info = b"flask-scs-redis/1 session values"
    key = HKDF(hashes.SHA256(), 32, salt, info).derive(token.encode())
    aad = b"flask-scs-redis/1 record\0" + sealed[:6] + metadata
    return AESGCM(key).decrypt(sealed[6:18], sealed[18:], aad)


def test_a_stolen_cookie_and_a_dump_open_nothing_without_the_server_secret() -> None:
    from cryptography.exceptions import InvalidTag

    token = new_token()
    sealed = Sealer([SECRET.encode()]).seal(token, b"\x81\xa1k\xa1v", b"meta")
    assert attempt_to_open(token, sealed, b"meta", SECRET.encode()) == b"\x81\xa1k\xa1v"
    for guess in [None, b"", OTHER_SECRET.encode(), token.encode()]:
        with pytest.raises(InvalidTag):
            attempt_to_open(token, sealed, b"meta", guess)
    relabelled = sealed[:2] + b"\0\0\0\0" + sealed[6:]  # as if sealed without a secret
    with pytest.raises(SealError):
        Sealer().open(token, relabelled, b"meta")


def test_each_seal_draws_a_new_nonce() -> None:
    sealer, token = Sealer([SECRET.encode()]), new_token()
    nonces = {sealer.seal(token, b"\x80", b"")[6:18] for _ in range(1000)}
    assert len(nonces) == 1000


# -- what encryption costs in commands ---------------------------------------------------


@pytest.mark.parametrize("path", ["/read", "/incr", "/none", "/renew", "/logout"])
def test_encryption_sends_the_same_commands(
    make_client: MakeClient, count: Count, path: str
) -> None:
    counts = []
    for options in ({}, ENCRYPTED):
        client = make_client(**{"user_key": None, **options})
        client.get("/incr")
        with count() as counter:
            client.get(path).close()  # the middleware commits again at close
        counts.append(counter.by_command)
    assert counts[0] == counts[1]


# -- switching on and off ----------------------------------------------------------------


def test_switching_on_keeps_every_session_and_seals_it_at_its_next_request(
    make_client: MakeClient, redis_client: redis.Redis, count: Count
) -> None:
    plain = make_client()
    plain.get(f"/set?key=name&value={MARKER}")
    plain.get("/incr")
    key = record_key(plain)
    assert not stored_record(redis_client, plain).sealed
    sealing = make_client(**ENCRYPTED)
    sealing.set_cookie("session", cookie_token(plain) or "")
    with count() as counter:
        assert sealing.get("/read").get_data() == b"1"  # not logged out
    assert counter.by_command == {"evalsha": 2}  # the read, then the rewrite
    assert record_key(sealing) == key  # same token, same key
    assert stored_record(redis_client, sealing).sealed
    assert MARKER.encode() not in everything_in(redis_client)
    assert sealing.get("/read").get_data() == b"1"
    with count() as counter:
        sealing.get("/read")
    assert counter.by_command == {"evalsha": 1}  # sealed now: a read is a read again


def test_switching_on_with_the_index_keeps_sessions_that_no_index_listed(
    make_client: MakeClient, redis_client: redis.Redis, adapter: str
) -> None:
    plain = make_client(user_key=None)  # the index is switched on with encryption
    plain.get(f"/set?key=_user_id&value={USER}")
    sealing = make_client(**ENCRYPTED)
    sealing.set_cookie("session", cookie_token(plain) or "")
    assert sealing.get("/read").status_code == 200
    assert sealing.get("/incr").get_data() == b"1"  # not logged out by the resealing
    assert stored_record(redis_client, sealing).sealed
    assert len(redis_client.keys("*:user")) == 1  # and indexed now, under the keyed name


def test_keys_without_encrypt_warn_at_set_up_that_nothing_is_sealed(
    redis_client: redis.Redis,
) -> None:
    with pytest.warns(ConfigurationWarning, match="SCS_ENCRYPTION_KEYS is set and SCS_ENCRYPT"):
        build_flask_app(redis_client, SCS_ENCRYPTION_KEYS=[SECRET])


OPENING = {"encryption_keys": [SECRET]}  # opens what is sealed, seals nothing


@pytest.mark.filterwarnings("ignore::flask_scs_redis.ConfigurationWarning")
def test_switching_off_through_keys_alone_keeps_every_session(
    make_client: MakeClient, redis_client: redis.Redis, count: Count, adapter: str
) -> None:
    sealing = make_client(**ENCRYPTED)
    sealing.get(f"/set?key=name&value={MARKER}")
    sealing.get(f"/set?key=_user_id&value={USER}")
    token = cookie_token(sealing) or ""
    opening = make_client(**OPENING)
    opening.set_cookie("session", token)
    with count() as counter:
        assert opening.get("/read").status_code == 200  # not logged out
    assert counter.by_command["evalsha"] >= 2  # the read, then the rewrite in the clear
    assert not stored_record(redis_client, opening).sealed
    with count() as counter:
        opening.get("/read").close()
    assert counter.by_command == {"evalsha": 1}
    plain = make_client()  # the keys can go now: nothing this session needs is sealed
    plain.set_cookie("session", token)
    assert plain.get("/incr").get_data() == b"1"
    assert MARKER.encode() in stored_record(redis_client, plain).values  # in the clear again
    admin = SessionAdmin(RedisStore(redis_client))
    assert len(admin.user_sessions(USER)) == 1  # indexed under the plain name again


@pytest.mark.filterwarnings("ignore::flask_scs_redis.ConfigurationWarning")
def test_processes_switching_on_one_by_one_never_log_anyone_out(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    # Step 1 gave every process the keys; step 2 turns sealing on one process at a time.
    opening, sealing = make_client(**OPENING), make_client(**ENCRYPTED)
    opening.get("/incr")
    token = cookie_token(opening) or ""
    sealing.set_cookie("session", token)
    for n in range(2, 8):
        browser = sealing if n % 2 else opening
        assert browser.get("/incr").get_data() == str(n).encode()
        assert stored_record(redis_client, browser).sealed == (browser is sealing)
    assert cookie_token(sealing) == cookie_token(opening) == token


def test_switching_off_starts_sealed_sessions_over(
    make_client: MakeClient, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    sealing = make_client(**ENCRYPTED)
    sealing.get("/incr")
    key = record_key(sealing)
    plain = make_client()
    plain.set_cookie("session", cookie_token(sealing) or "")
    caplog.set_level(logging.WARNING, "flask_scs_redis")
    assert plain.get("/read").get_data() == b"None"
    assert "encryption is off" in caplog.text
    assert redis_client.exists(key) == 0


@pytest.mark.parametrize("required", [False, True], ids=["sealing", "required"])
def test_an_emptied_sealed_session_is_stored_as_the_empty_map(
    make_client: MakeClient, redis_client: redis.Redis, required: bool
) -> None:
    client = make_client(**(REQUIRED if required else ENCRYPTED))
    client.get(f"/set?key=name&value={MARKER}")
    key = record_key(client)
    client.get("/delete?key=name")  # stored as the empty map, in the clear
    blob = redis_client.get(key)
    assert blob is not None and unpack_record(blob).values == b"\x80"
    assert client.get("/incr").get_data() == b"1"


# -- set-up --------------------------------------------------------------------------------


def test_encryption_with_the_user_index_needs_a_server_secret(redis_client: redis.Redis) -> None:
    with pytest.raises(ConfigurationError, match="SCS_ENCRYPTION_KEYS"):
        build_flask_app(redis_client, encrypt=True)
    with pytest.raises(ConfigurationError, match="needs a server secret"):
        SessionEngine(RedisStore(redis_client), sealer=Sealer())
    build_flask_app(redis_client, encrypt=True, user_key=None)  # no index: the token suffices


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"SCS_ENCRYPT": True, "SCS_ENCRYPTION_KEYS": ["x" * 31]}, r"\[0\] is 31 bytes"),
        ({"SCS_ENCRYPT": True, "SCS_ENCRYPTION_KEYS": [SECRET, SECRET]}, "the same secret twice"),
        ({"SCS_ENCRYPT": True, "SCS_ENCRYPTION_KEYS": [7]}, "list of secrets"),
        ({"SCS_ENCRYPT": "yes", "SCS_ENCRYPTION_KEYS": [SECRET]}, "SCS_ENCRYPT must be True"),
    ],
)
def test_encryption_settings_are_checked_at_set_up(
    redis_client: redis.Redis, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build_flask_app(redis_client, **config)


def test_one_secret_may_be_given_without_a_list(redis_client: redis.Redis) -> None:
    app = build_flask_app(redis_client, SCS_ENCRYPT=True, SCS_ENCRYPTION_KEYS=SECRET)
    assert app.session_interface.engine.sealer.has_secret  # type: ignore[attr-defined]


def test_without_cryptography_set_up_says_what_to_install() -> None:
    program = (
        "import sys; sys.modules['cryptography'] = None\n"
        "from flask import Flask\n"
        "from flask_scs_redis import RedisSessions\n"
        "app = Flask('x')\n"
        "app.config.update(SCS_ENCRYPT=True, SCS_USER_KEY=None, SCS_REDIS_URL='redis://127.0.0.1:1')\n"
        "RedisSessions(app)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 1
    assert "ConfigurationError" in result.stderr
    assert "pip install 'flask-scs-redis[encrypt]'" in result.stderr


def test_the_middleware_takes_the_same_settings(redis_client: redis.Redis) -> None:
    with pytest.raises(ConfigurationError, match="encryption_keys"):
        build_wsgi_app(redis_client, encrypt=True)
    with pytest.warns(ConfigurationWarning, match="encryption_keys is set and encrypt is not"):
        opening = build_wsgi_app(redis_client, encryption_keys=[SECRET])
    assert opening.engine.sealer is not None and not opening.engine.sealer.sealing
    middleware = build_wsgi_app(redis_client, **ENCRYPTED)
    assert middleware.engine.sealer is not None
    assert middleware.admin().count() == 0


def test_a_record_header_stays_readable_without_the_token(redis_client: redis.Redis) -> None:
    # What the admin reads: every field but the values, in the clear.
    sealer, token = Sealer([SECRET.encode()]), new_token()
    blob, _ = pack_record(Record(2, 10**13, 5, encode({"a": 1}), 6, "Chrome"), sealer, token)
    fields = msgpack.unpackb(blob)
    assert fields[:4] == [1, 2, 10**13, 5] and fields[5:] == [6, "Chrome"]
    assert fields[4][:1] == SEALED


# -- a rewrite the store refuses -------------------------------------------------------


@pytest.mark.parametrize("build", [build_flask_app, build_wsgi_app], ids=["flask", "wsgi"])
@pytest.mark.parametrize("fault", ["out of memory", "read-only replica"])
def test_a_read_that_would_reseal_answers_while_redis_refuses_writes(
    fresh_redis_server: RedisServer, build: Any, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    primary = fresh_redis_server.client()
    plain = Client(build(primary))
    plain.get(f"/set?key=_user_id&value={USER}")  # indexed too: the move is refused as well
    plain.get("/incr")
    token = cookie_token(plain) or ""
    with refusing_writes(fresh_redis_server, fault) as target:
        sealing = Client(build(target, **ENCRYPTED))
        sealing.set_cookie("session", token)
        caplog.set_level(logging.WARNING, "flask_scs_redis")
        response = sealing.get("/read")
        response.close()
        assert (response.status_code, response.get_data()) == (200, b"1")
        assert "not rewritten as it is stored now" in caplog.text
        assert token not in caplog.text
        key = "scs:session:" + token_digest(token)
        assert not unpack_record(target.get(key) or b"").sealed  # as it was
        if fault == "out of memory":  # (a replica is waited on to be promoted: slow to test)
            assert sealing.get("/incr").status_code == 503  # a real change is an outage, as ever
            primary.config_set("maxmemory", 0)
            assert sealing.get("/read").get_data() == b"1"
            assert unpack_record(primary.get(key) or b"").sealed  # resealed once it could be


# -- sealing required ------------------------------------------------------------------


@pytest.mark.parametrize("required", [False, True], ids=["accepted", "required"])
def test_a_session_planted_in_the_clear_is_refused_once_sealing_is_required(
    make_client: MakeClient,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    required: bool,
) -> None:
    # Someone who can write to Redis, without the server secret, plants a
    # session for a token of their own.
    thief = make_client(**(REQUIRED if required else ENCRYPTED))
    thief.get("/incr")
    key = record_key(thief)
    record = unpack_record(redis_client.get(key) or b"")
    planted = record._replace(values=encode({"n": 1000, "_user_id": "admin"}))
    redis_client.set(key, pack_record(planted)[0], keepttl=True)
    caplog.set_level(logging.WARNING, "flask_scs_redis")
    if not required:  # while plaintext records are read, for switching on
        assert thief.get("/read").get_data() == b"1000"
        return
    assert thief.get("/read").get_data() == b"None"
    assert "stored in the clear, and sealing is required" in caplog.text
    assert redis_client.exists(key) == 0


@pytest.mark.parametrize(
    "config",
    [
        {"SCS_ENCRYPTION_REQUIRED": True},
        {"SCS_ENCRYPTION_REQUIRED": True, "SCS_ENCRYPT": True, "SCS_USER_KEY": None},
        {"SCS_ENCRYPTION_REQUIRED": True, "SCS_ENCRYPTION_KEYS": [SECRET]},
    ],
    ids=["alone", "without-keys", "without-encrypt"],
)
def test_sealing_required_needs_encryption_with_a_server_secret(
    redis_client: redis.Redis, config: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError, match="SCS_ENCRYPTION_REQUIRED=True needs"):
        build_flask_app(redis_client, **config)
    with pytest.raises(ConfigurationError, match="encryption_required=True needs"):
        build_wsgi_app(redis_client, encryption_required=True, encrypt=True, user_key=None)


# -- the stored format is kept ------------------------------------------------------------

#: A record sealed by version 0.2, which every later version must open.
SEALED_BY_0_2 = bytes.fromhex(
    "970103cf000003bb2cc3d800cf0000019abd75b800c43bc101d48762d369684ef43a37ff2abd58deaa2e"
    "e0b156d6fe24c7013e0f3c0ea8356ee10c6049eea109ec23f355b55ca72edee4abddd5a8f8e20c25cf00"
    "00019abd76a260af4368726f6d65206f6e204c696e7578"
)


def test_a_record_sealed_by_an_earlier_version_still_opens() -> None:
    sealer = Sealer(["known-answer-secret-of-at-least-32-bytes"])
    record, values = read_record(SEALED_BY_0_2, sealer, "A" * 42 + "E")
    assert values == {"cart": ["apple"], "_user_id": "42"}
    assert (record.revision, record.description, record.rewrite) == (3, "Chrome on Linux", False)


def test_encrypting_gives_no_warning(redis_client: redis.Redis) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_flask_app(redis_client, SCS_ENCRYPT=True, SCS_ENCRYPTION_KEYS=[SECRET])
        build_wsgi_app(redis_client, **ENCRYPTED)


def test_with_sealing_required_an_emptied_record_is_no_corrupt_one(
    make_client: MakeClient, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    client, in_flight = make_client(**REQUIRED), make_client(**REQUIRED)
    client.get(f"/set?key=name&value={MARKER}")
    key = record_key(client)
    in_flight.set_cookie("session", cookie_token(client) or "")  # a request still in flight
    client.get("/delete?key=name")
    caplog.set_level(logging.WARNING, "flask_scs_redis")
    assert in_flight.get("/read").get_data() == b"None"
    assert redis_client.exists(key) == 1  # left to expire, not deleted as unreadable
    assert "unreadable" not in caplog.text


@pytest.mark.parametrize("path", ["/renew", "/expiry?lifetime=600", "/describe?as=Phone"])
def test_a_change_beside_a_reseal_is_still_an_outage_while_redis_refuses_writes(
    fresh_redis_server: RedisServer, path: str
) -> None:
    client = fresh_redis_server.client()
    plain = build_flask_app(client).test_client()
    plain.get("/incr")
    sealing = build_flask_app(client, SCS_ENCRYPT=True, SCS_ENCRYPTION_KEYS=[SECRET])
    browser = sealing.test_client()
    browser.set_cookie("session", cookie_token(plain) or "")
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)
    assert browser.get(path).status_code == 503  # only a reseal alone is excused


def test_users_index_names_are_kept_from_version_to_version() -> None:
    # A renamed index would hide every session indexed before an upgrade
    # from "log out everywhere".
    sealer = Sealer(["known-answer-secret-of-at-least-32-bytes"])
    assert sealer.user_names("42") == (
        "sjJ9bDOHaVEzMmIGisc_Ouh9XhWSQFYGeeyV30cOwyU",
        token_digest("42"),
    )


def test_the_last_key_is_kept_per_thread() -> None:
    # Shared between threads, one request could seal with another's key.
    assert isinstance(Sealer([SECRET])._last, threading.local)
