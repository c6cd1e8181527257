"""Session tokens: how they are made, recognised and turned into store keys."""

from __future__ import annotations

import base64
import hashlib
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
