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

# Moves a record to a new key on one server, all or nothing. KEYS[1] is the
# old key, KEYS[2] the new; ARGV as for COMPARE_AND_SET. The old key is
# deleted, or, if ARGV[4] is not empty, left holding ARGV[4] until the Unix ms
# time ARGV[5] (a rotated token's forwarding record). The SET comes first:
# when Redis refuses it (OOM), the script stops before the old key changes.
# Answers as COMPARE_AND_SET does, about KEYS[1].
MOVE = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if string.sub(current, 1, string.len(ARGV[1])) ~= ARGV[1] then return current end
redis.call('SET', KEYS[2], ARGV[2], 'PXAT', ARGV[3])
if ARGV[4] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[4], 'PXAT', ARGV[5])
end
return 1
"""

# Reads a record and slides its idle timeout in one command, never past the
# deadline that the record itself holds, and not at all once ARGV[1] (now) has
# passed it. The window is the record's own idle timeout (its ninth field; 0:
# none) if it has one, else the app's: ARGV[2], a Unix ms time ('' for none).
# The fields are walked inline (no helper tables or closures to build on each
# call) and only up to the ninth, so a record's values are skipped, not
# parsed. A server that refuses the write (a read-only replica) still
# answers the read.
READ = """
local record = redis.call('GET', KEYS[1])
if not record then return false end
local byte, size = string.byte, #record
local head = byte(record, 1)
if head == nil or head < 0x95 or head > 0x9f then return record end
local at, deadline, idle = 2, nil, nil
-- The fields as msgpack items, up to the ninth: ints, nil, str and bin, whose
-- sizes their headers give (width: bytes of an int; negative: of a size).
for field = 1, math.min(head - 0x90, 9) do
  local b = byte(record, at)
  if b == nil then return record end
  local value, width, skip = nil, 0, 0
  if b < 0x80 then value = b
  elseif b == 0xc0 then
  elseif b >= 0xa0 and b <= 0xbf then skip = b - 0xa0
  elseif b == 0xcc or b == 0xd0 then width = 1
  elseif b == 0xcd or b == 0xd1 then width = 2
  elseif b == 0xce or b == 0xd2 then width = 4
  elseif b == 0xcf or b == 0xd3 then width = 8
  elseif b == 0xc4 or b == 0xd9 then width = -1
  elseif b == 0xc5 or b == 0xda then width = -2
  elseif b == 0xc6 or b == 0xdb then width = -4
  else return record end
  if width ~= 0 then
    local n, w = 0, width < 0 and -width or width
    if at + w > size then return record end
    for i = at + 1, at + w do n = n * 256 + byte(record, i) end
    if width > 0 then value = n else skip = n end
    at = at + w
  end
  at = at + 1 + skip
  if field == 3 then deadline = value elseif field == 9 then idle = value end
end
local now = tonumber(ARGV[1])
if deadline == nil or deadline <= now or idle == 0 then return record end
local until_ms = ARGV[2] ~= '' and tonumber(ARGV[2]) or nil
if idle ~= nil then until_ms = now + idle end
if until_ms == nil then return record end
local slid = redis.pcall('PEXPIREAT', KEYS[1], math.min(deadline, until_ms))
-- A read-only replica refuses the write: the read still answers, unslid.
if type(slid) == 'table' and slid.err and not string.find(slid.err, '^READONLY') then
  return redis.error_reply(slid.err)
end
return record
"""

# Deletes KEYS[1] if it holds a session record (a string that begins as
# pack_record begins one), and answers the record when ARGV[1] is 1, else 1;
# anything else is left alone and the answer is nil.
TAKE_RECORD = """
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return false end
local record = redis.call('GET', KEYS[1])
local head, format = string.byte(record, 1, 2)
if head == nil or head < 0x95 or head > 0x9f or format ~= 1 then return false end
redis.call('DEL', KEYS[1])
if ARGV[1] == '1' then return record end
return 1
"""

# Deletes KEYS[1] if it is a user index (a sorted set); returns 1 if it did.
DELETE_INDEX = """
if redis.call('TYPE', KEYS[1]).ok ~= 'zset' then return 0 end
return redis.call('DEL', KEYS[1])
"""

# Joins ARGV[1] to a user's index (KEYS[1]) with its deadline ARGV[2] as score,
# after pruning entries past ARGV[3] (now). With ARGV[4] set, only if that id
# (the session being renewed) is still indexed: a purge took it out, so the
# answer is -1 and nothing is added. Keeps the key alive until its last
# deadline. Past ARGV[5] entries (0: no limit), or when the count of entries
# is a multiple of ARGV[6] (0: never), answers every other id, oldest first,
# for the caller to check; otherwise an empty list.
INDEX_JOIN = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if ARGV[4] ~= '' and not redis.call('ZSCORE', KEYS[1], ARGV[4]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
local limit, every = tonumber(ARGV[5]), tonumber(ARGV[6])
local count = redis.call('ZCARD', KEYS[1])
local over = limit ~= 0 and count > limit
if not over and (every == 0 or count % every ~= 0) then return {} end
local others = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if id ~= ARGV[1] then table.insert(others, id) end
end
return others
"""

# Confirms that ARGV[1] is still in the index KEYS[1] after its record was
# written (0: a purge took it out meanwhile), and drops ARGV[2] if given.
INDEX_CONFIRM = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[1], ARGV[2]) end
return 1
"""

# Takes every id but ARGV[1] out of the index KEYS[1] at once, and answers
# them: the first step of ending every session of a user.
INDEX_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local taken = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if id ~= ARGV[1] then table.insert(taken, id) end
end
for _, id in ipairs(taken) do redis.call('ZREM', KEYS[1], id) end
return taken
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
