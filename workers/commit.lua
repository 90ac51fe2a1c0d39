-- The shard commit: everything one drain batch changed, applied atomically, or nothing.
--
-- KEYS[1] applied   string  shard version: id of the last stream entry committed
-- KEYS[2] events    stream  the shard's input; committed entries are trimmed away
-- KEYS[3] users     hash    user id -> profile blob
-- KEYS[4] due       zset    user id -> next flip time (ms)
-- KEYS[5..]         member indexes (zset, score 0) and job outboxes (stream), by index
--
-- ARGV: expected version ('' when none), new version, trim MINID ('' = no trim), then sections,
-- each starting with its count:
--   users:     n, then n pairs   (user id, blob)
--   due add:   n, then n pairs   (score, user id)
--   due rem:   n, then n ids
--   members:   g groups of (key index, n adds, n pairs ('0', user id), m removes, m ids)
--   outboxes:  g groups of (key index, n records, n triples (user id, idempotency key, body))
--
-- Returns 1, or {0, current version} when another writer committed first (the fence).
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return {0, current} end

local i = 4
local CHUNK = 400

local function bulk(cmd, key, width)
  local n = tonumber(ARGV[i]); i = i + 1
  local last = i + n * width - 1
  while i <= last do
    local stop = math.min(i + CHUNK * width - 1, last)
    redis.call(cmd, key, unpack(ARGV, i, stop))
    i = stop + 1
  end
end

bulk('HSET', KEYS[3], 2)
bulk('ZADD', KEYS[4], 2)
bulk('ZREM', KEYS[4], 1)

local groups = tonumber(ARGV[i]); i = i + 1
for _ = 1, groups do
  local key = KEYS[tonumber(ARGV[i])]; i = i + 1
  bulk('ZADD', key, 2)
  bulk('ZREM', key, 1)
end

groups = tonumber(ARGV[i]); i = i + 1
for _ = 1, groups do
  local key = KEYS[tonumber(ARGV[i])]; i = i + 1
  local n = tonumber(ARGV[i]); i = i + 1
  for _ = 1, n do
    redis.call('XADD', key, '*', 'u', ARGV[i], 'k', ARGV[i + 1], 'b', ARGV[i + 2])
    i = i + 3
  end
end

redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('XTRIM', KEYS[2], 'MINID', ARGV[3]) end
return 1
