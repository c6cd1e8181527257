"""Session tokens: how they are made, recognised and turned into store keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

#: Bytes of randomness in a token.
TOKEN_BYTES = 32

# 32 bytes in unpadded base64url are 43 characters; the last one carries two
# padding bits, which must be zero, so only 16 characters can end a token.
_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")


def new_token() -> str:
    """Return a fresh token: 32 random bytes, base64url without padding."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_well_formed(value: str | None) -> bool:
    """Tell whether ``value`` could be a token made by :func:`new_token`.

    Anything else is ignored before the store is asked, so a forged or
    mangled cookie costs no Redis command.
    """
    return value is not None and _TOKEN_PATTERN.fullmatch(value) is not None


def token_digest(token: str) -> str:
    """Return base64url-without-padding of SHA-256 of ``token`` (43 characters).

    Used as the store id when tokens are hashed, and in log lines, so that
    neither a Redis dump nor a log reveals a live cookie; and for a user's
    name in the key of their index. Any str is hashed as its UTF-8 bytes
    (a token is ASCII, so it hashes as ever).
    """
    return digest_text(hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest())


def digest_text(digest: bytes) -> str:
    """Return ``digest`` as base64url without padding (43 characters for 32 bytes)."""
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


_FORWARD_LABEL = b"flask-scs-redis token forwarding"


def _pad(old_token: str) -> bytes:
    # HMAC keyed by the old token: another function of it than its store id
    # (SHA-256), so the id gives nothing towards the pad.
    return hmac.new(old_token.encode("ascii"), _FORWARD_LABEL, hashlib.sha256).digest()


def forward(old_token: str, new_token: str) -> bytes:
    """Return ``new_token`` masked so that only ``old_token`` unmasks it (see :func:`followed`).

    A rotated session's old record keeps this for its grace window: a request
    that comes with the old token learns the new one, and nobody else does.
    """
    raw = base64.urlsafe_b64decode(new_token + "=")
    return bytes(a ^ b for a, b in zip(raw, _pad(old_token)))


def followed(old_token: str, masked: bytes) -> str | None:
    """Return the token that :func:`forward` masked for ``old_token``, or None if malformed."""
    if len(masked) != TOKEN_BYTES:
        return None
    raw = bytes(a ^ b for a, b in zip(masked, _pad(old_token)))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
