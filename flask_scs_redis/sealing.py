"""Encryption at rest: session values sealed under a key that only the cookie's token gives.

Each session's values are sealed with AES-256-GCM under a key derived from its
token with HKDF-SHA256, the server secret (if any) as the salt. The server
never stores the token: a record's key names SHA-256 of it, a different
function of it than HKDF's HMAC, so a Redis dump alone opens nothing. With a
server secret, a stolen cookie together with a dump opens nothing either.

A sealed value is ``0xC1 | version | key id (4) | nonce (12) | ciphertext and
tag``. 0xC1 is the one byte msgpack never uses, so sealed values cannot be
taken for encoded ones, nor encoded ones for sealed. The key id names which
server secret sealed it (all zeros: none). Each seal draws a fresh random
96-bit nonce; a key is one token's, and a token seals only its own session's
few writes, so a repeat is never expected (NIST allows 2**32 seals a key).
The record's metadata, which the library reads without the token, is
authenticated with the values: a record whose metadata was changed fails to
open.

The same secrets give the users' index keys their names, as a keyed hash of
the user, so nothing in Redis names a user that anyone could guess.

A sealer that does not seal only opens: it reads what a sealing one wrote
and writes values in the clear. Processes switch encryption on or off, or
rotate a secret, through it one at a time without logging anyone out.

Values stored in the clear are read too, so that encryption can be switched
on over a live store. A sealer that requires sealing refuses them (all but
an emptied session's): then whoever can write to Redis but holds no server
secret cannot plant a session.

.. versionadded:: 0.2
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from .errors import ConfigurationError
from .tokens import digest_text, token_digest

#: The byte that begins a sealed value: one that msgpack never uses.
SEALED = b"\xc1"
_VERSION = b"\x01"
_HEADER_LENGTH = 6  # SEALED, version, key id
_NONCE_LENGTH = 12
_TAG_LENGTH = 16
_NO_SECRET_ID = b"\0\0\0\0"
#: The shortest server secret accepted, in bytes.
MIN_SECRET_BYTES = 32

# Labels that keep each use of a secret or a token apart from the others.
_VALUES_LABEL = b"flask-scs-redis/1 session values"
_RECORD_LABEL = b"flask-scs-redis/1 record\0"
_KEY_ID_LABEL = b"flask-scs-redis/1 key id"
_USER_LABEL = b"flask-scs-redis/1 user\0"


class EncryptionSettings(Protocol):
    """The settings a sealer is made from, as :class:`~.options.Options` holds them."""

    @property
    def encrypt(self) -> bool: ...
    @property
    def encryption_keys(self) -> Sequence[bytes]: ...
    @property
    def encryption_required(self) -> bool: ...


class SealError(ValueError):
    """A sealed value that cannot be opened: tampered, another token's, or an unknown secret."""


def is_sealed(values: bytes) -> bool:
    """Tell whether the stored ``values`` are sealed."""
    return values[:1] == SEALED


def secrets_from(name: str, value: Any) -> tuple[bytes, ...]:
    """Return the server secrets ``value`` lists (str or bytes, or one of them), as bytes.

    :raises ConfigurationError: one is not str or bytes, is shorter than
        :data:`MIN_SECRET_BYTES`, or two are the same.
    """
    listed = [value] if isinstance(value, (str, bytes)) else value
    if not isinstance(listed, (list, tuple)) or not all(
        isinstance(secret, (str, bytes)) for secret in listed
    ):
        raise ConfigurationError(
            f"{name} must be a list of secrets (str or bytes), not a {value!r}"
        )
    found = tuple(s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in listed)
    for at, secret in enumerate(found):
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigurationError(
                f"{name}[{at}] is {len(secret)} bytes; a secret needs {MIN_SECRET_BYTES} or more,"
                " such as secrets.token_urlsafe(32)"
            )
    ids = [_key_id(secret) for secret in found]
    if len(set(ids)) != len(ids):
        raise ConfigurationError(f"{name} lists the same secret twice")
    return found


def _key_id(secret: bytes | None) -> bytes:
    if secret is None:
        return _NO_SECRET_ID
    return hmac.new(secret, _KEY_ID_LABEL, hashlib.sha256).digest()[:4]


class _LastKey(threading.local):
    """The key a thread derived last, so a save after a load derives it once.

    One a thread, replaced at its next request: a key a request used
    outlives it only until the thread serves another.
    """

    token = ""
    key_id = b""
    aead: Any = None


class Sealer:
    """Seal and open session values, and name users, with the server ``secrets``.

    The first secret seals and names; every one opens, so a secret can be
    rotated (the README's "Encryption at rest" gives the steps). Without
    secrets the token alone keys the values, and users cannot be named
    safely (see :attr:`has_secret`). With ``seal`` False it only opens, and
    with ``require`` it refuses values stored in the clear (see above).

    :raises ConfigurationError: the ``cryptography`` package is not installed.
    """

    def __init__(
        self, secrets: Sequence[str | bytes] = (), *, seal: bool = True, require: bool = False
    ) -> None:
        checked = secrets_from("secrets", list(secrets))
        try:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF
        except ImportError:
            raise ConfigurationError(
                "encryption at rest needs the cryptography package:"
                " pip install 'flask-scs-redis[encrypt]'"
            ) from None
        self._aead, self._hkdf, self._sha256 = AESGCM, HKDF, hashes.SHA256
        #: Each secret by its key id, the sealing one first; None stands for no secret.
        self._secrets: dict[bytes, bytes | None] = {_key_id(s): s for s in checked} or {
            _NO_SECRET_ID: None
        }
        self._sealing_id = next(iter(self._secrets))
        self._last = _LastKey()
        #: Whether a server secret is mixed in, which naming users needs.
        self.has_secret = bool(checked)
        #: Whether values are sealed when written, or only opened when read.
        self.sealing = seal
        #: Whether values stored in the clear are refused.
        self.requiring = require

    @classmethod
    def configured(cls, settings: EncryptionSettings) -> Sealer | None:
        """The sealer ``settings`` ask for: None if they name neither encryption nor keys.

        With keys but no ``encrypt``, a sealer that only opens.
        """
        if not (settings.encrypt or settings.encryption_keys):
            return None
        return cls(
            settings.encryption_keys, seal=settings.encrypt, require=settings.encryption_required
        )

    def __repr__(self) -> str:
        secrets = len(self._secrets) if self.has_secret else 0
        return f"Sealer(secrets={secrets}, seal={self.sealing})"

    def _key(self, token: str, key_id: bytes) -> Any:
        """The cipher of ``token``'s values under the secret ``key_id`` names."""
        last = self._last
        # Compared in constant time: the last token may be another client's.
        if last.key_id != key_id or not hmac.compare_digest(last.token, token):
            derived = self._hkdf(
                algorithm=self._sha256(), length=32, salt=self._secrets[key_id], info=_VALUES_LABEL
            )
            last.aead = self._aead(derived.derive(token.encode("ascii")))
            last.token, last.key_id = token, key_id
        return last.aead

    def seal(self, token: str, values: bytes, metadata: bytes) -> bytes:
        """Seal ``values`` for ``token``, authenticating ``metadata`` with them."""
        header = SEALED + _VERSION + self._sealing_id
        nonce = os.urandom(_NONCE_LENGTH)
        aead = self._key(token, self._sealing_id)
        sealed = aead.encrypt(nonce, values, _RECORD_LABEL + header + metadata)
        return header + nonce + bytes(sealed)

    def open(self, token: str, sealed: bytes, metadata: bytes) -> bytes:
        """Return the values that :meth:`seal` sealed for ``token`` with ``metadata``.

        :raises SealError: they cannot be opened: another token's, sealed
            with a secret not listed, or changed since (values or metadata).
        """
        if len(sealed) < _HEADER_LENGTH + _NONCE_LENGTH + _TAG_LENGTH:
            raise SealError("sealed values too short")
        header = sealed[:_HEADER_LENGTH]
        nonce = sealed[_HEADER_LENGTH : _HEADER_LENGTH + _NONCE_LENGTH]
        if header[:2] != SEALED + _VERSION:
            raise SealError("unknown sealing format")
        key_id = header[2:]
        if key_id not in self._secrets:
            raise SealError("sealed with a secret that is not listed")
        aead = self._key(token, key_id)
        sealed_values = sealed[_HEADER_LENGTH + _NONCE_LENGTH :]
        try:
            return bytes(aead.decrypt(nonce, sealed_values, _RECORD_LABEL + header + metadata))
        except Exception:  # InvalidTag; nothing of the data is in it
            raise SealError("sealed values failed authentication") from None

    def stores_as_now(self, values: bytes) -> bool:
        """Tell whether stored ``values`` are as a save would store them now.

        Sealed with the first secret when sealing; in the clear when only opening.
        """
        if not self.sealing:
            return not is_sealed(values)
        return is_sealed(values) and values[2:_HEADER_LENGTH] == self._sealing_id

    def check_use(self, hash_tokens: bool, user_key: str | None) -> None:
        """Refuse a store that would undo the sealing.

        :raises ConfigurationError: tokens are stored in the clear (no
            ``hash_tokens``), which would give a dump the key to every
            session; or there is a per-user index (values at ``user_key``)
            and no server secret to name users with.
        """
        if not hash_tokens:
            raise ConfigurationError(
                "encryption at rest needs hashed tokens: with SCS_HASH_TOKENS = False"
                " (hash_tokens=False) each record's key holds its token, which opens it"
            )
        if user_key is not None and not self.has_secret:
            raise ConfigurationError(
                "encryption at rest with the per-user index needs a server secret: without"
                " one the index keys would name users by a hash anyone can reverse by"
                " guessing. Set SCS_ENCRYPTION_KEYS (encryption_keys=), or SCS_USER_KEY ="
                " None (user_key=None) to go without the index"
            )

    def user_names(self, user: str) -> tuple[str, ...]:
        """The names ``user``'s index has had, newest first (43 base64url characters each).

        One a secret, as its keyed hash, and the unkeyed SHA-256 of the
        user, which the index has without encryption: last when sealing,
        first when only opening. Without secrets, that one only.
        """
        data = user.encode("utf-8", "surrogatepass")
        keyed = [
            digest_text(hmac.new(secret, _USER_LABEL + data, hashlib.sha256).digest())
            for secret in self._secrets.values()
            if secret is not None
        ]
        if not self.sealing:
            return (token_digest(user), *keyed)
        return (*keyed, token_digest(user))
