"""Tokens: 256 random bits, strictly recognised, hashed into store keys."""

from __future__ import annotations

import base64
import hashlib

import pytest

from flask_scs_redis.store import RedisStore
from flask_scs_redis.tokens import is_well_formed, new_token, token_digest


def test_a_token_is_32_random_bytes_in_unpadded_base64url() -> None:
    token = new_token()
    assert len(token) == 43
    assert "=" not in token
    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    assert len({new_token() for _ in range(1000)}) == 1000


def test_every_new_token_is_well_formed() -> None:
    assert all(is_well_formed(new_token()) for _ in range(2000))


@pytest.mark.parametrize(
    "cookie",
    [
        None,
        "",
        "abc",
        "A" * 42,
        "A" * 44,
        "A" * 42 + "B",  # the padding bits of the last character are not zero
        "A" * 42 + "=",
        "A" * 41 + "*A",
        "A" * 41 + "?A",
        "A" * 41 + "[A",
        "A" * 41 + "+A",  # standard base64, not base64url
        "A" * 41 + "/A",
        "A" * 42 + "A\n",
        "\u00c4" * 43,
    ],
)
def test_anything_but_a_token_is_not_well_formed(cookie: str | None) -> None:
    assert not is_well_formed(cookie)


def test_the_store_key_is_the_prefix_plus_the_hash_of_the_token(redis_client: object) -> None:
    token = new_token()
    digest = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=")
    assert token_digest(token) == digest.decode()
    assert RedisStore(redis_client, prefix="p:").key_for(token) == "p:" + digest.decode()
    assert token not in RedisStore(redis_client).key_for(token)


def test_unhashed_keys_hold_the_token_itself(redis_client: object) -> None:
    token = new_token()
    assert RedisStore(redis_client, hash_tokens=False).key_for(token) == "scs:session:" + token
