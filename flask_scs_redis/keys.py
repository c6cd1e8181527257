"""The library's key space under the prefix, and the ids it shows.

Every key the library writes has one of three shapes, where ``ID`` is 43
base64url characters::

    prefix + ID             a session record (ID: the hashed token, or the token)
    prefix + ID + ":lock"   that record's write lock
    prefix + ID + ":user"   a user's index (ID: the hashed user)

The shapes cannot be taken for one another, a user's name never becomes part
of a key, and bulk deletion checks a key's shape and contents before it
deletes, so an application sharing the prefix keeps its own keys.
"""

from __future__ import annotations

import re

from .tokens import token_digest

#: The length of a store id, or of a user's hashed name, in base64url characters.
ID_LENGTH = 43
_ID_CHARACTER = "[A-Za-z0-9_-]"
#: A store id, or a user's hashed name.
ID_PATTERN = re.compile(f"{_ID_CHARACTER}{{{ID_LENGTH}}}")
_ID_PREFIX = re.compile(f"{_ID_CHARACTER}{{1,{ID_LENGTH}}}")
LOCK_SUFFIX = ":lock"
INDEX_SUFFIX = ":user"
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def is_id(value: object) -> bool:
    """Tell whether ``value`` has the shape of a store id."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


class KeySpace:
    """Name the keys under ``prefix``; ``hash_tokens`` says what a record's ID is."""

    def __init__(self, prefix: str, hash_tokens: bool) -> None:
        self.prefix = prefix
        self.hash_tokens = hash_tokens
        self._match = _GLOB_SPECIAL.sub(r"\\\1", prefix)
        #: SCAN patterns for records and for user indexes.
        self.record_pattern = self._match + "?" * ID_LENGTH
        self.index_pattern = self.record_pattern + INDEX_SUFFIX

    def records_starting_with(self, id_prefix: str) -> str | None:
        """The SCAN pattern of the record keys whose store id begins with ``id_prefix``.

        None when no store id can begin so (not base64url, or too long).
        """
        if not _ID_PREFIX.fullmatch(id_prefix):
            return None
        return self._match + id_prefix + "?" * (ID_LENGTH - len(id_prefix))

    def record(self, token: str) -> str:
        """The key of the record of ``token``."""
        return self.prefix + (token_digest(token) if self.hash_tokens else token)

    def lock(self, key: str) -> str:
        """The key of the write lock of the record at ``key``."""
        return key + LOCK_SUFFIX

    def index(self, user: str) -> str:
        """The key of ``user``'s index, named by an unkeyed hash."""
        return self.index_named(token_digest(user))

    def index_named(self, name: str) -> str:
        """The key of the index whose hashed name is ``name``."""
        return self.prefix + name + INDEX_SUFFIX

    def is_record(self, key: str) -> bool:
        """Tell whether ``key`` has the shape of a record key."""
        return key.startswith(self.prefix) and is_id(key[len(self.prefix) :])

    def is_index(self, key: str) -> bool:
        """Tell whether ``key`` has the shape of an index key."""
        middle = key[len(self.prefix) : -len(INDEX_SUFFIX)]
        return key.startswith(self.prefix) and key.endswith(INDEX_SUFFIX) and is_id(middle)

    def public_id(self, key: str) -> str:
        """The id to show for the record at ``key``: never a live token.

        With hashed tokens it is the store id; without, the hash of the
        token, which is what the admin calls accept.
        """
        store_id = key[len(self.prefix) :]
        return store_id if self.hash_tokens else token_digest(store_id)
