"""The Lua scripts the store runs inside Redis, and how to read their answers.

Each script touches a single key, so Redis Cluster runs them as they are.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

# Compare-and-set. ARGV[1] is the tag (the first bytes) of the record the
# caller read; ARGV[2] is the new record, or empty to delete; ARGV[3] its
# expiry in Unix ms. Returns 1 when done, 0 when the key is gone, or the
# current record when another write came first.
COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if string.sub(current, 1, string.len(ARGV[1])) ~= ARGV[1] then return current end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
end
return 1
"""

# Adds ARGV[1] to a user's index (KEYS[1]) with its deadline ARGV[2] as score,
# after pruning entries past ARGV[3] (now); keeps at most ARGV[4] entries (0:
# all) and returns the ids it dropped, oldest first, never the one it added.
INDEX_ADD = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local dropped = {}
local limit = tonumber(ARGV[4])
if limit > 0 then
  local extra = redis.call('ZCARD', KEYS[1]) - limit
  if extra > 0 then
    for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, extra)) do
      if id ~= ARGV[1] and #dropped < extra then table.insert(dropped, id) end
    end
    redis.call('ZREM', KEYS[1], unpack(dropped))
  end
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return dropped
"""

# Deletes a lock only for the holder that took it.
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class WriteStatus(enum.Enum):
    """How a conditional write went."""

    DONE = "done"
    #: Another write came first; the record it left is in :attr:`Write.current`.
    CONFLICT = "conflict"
    #: The record is gone: ended by another request, or expired.
    GONE = "gone"


class Write(NamedTuple):
    """The answer to a conditional write."""

    status: WriteStatus
    current: bytes | None = None

    @classmethod
    def from_answer(cls, answer: object) -> Write:
        """Read the compare-and-set script's reply."""
        if isinstance(answer, bytes):
            return cls(WriteStatus.CONFLICT, answer)
        return cls(WriteStatus.DONE if answer == 1 else WriteStatus.GONE)
