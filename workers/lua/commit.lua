-- The shard commit: everything one drain batch changed, applied atomically, or nothing.
--
-- KEYS[1] applied   string  shard version: id of the last stream entry committed
-- KEYS[2] events    stream  the shard's input; committed entries are trimmed away
-- KEYS[3] users     hash    user id -> profile blob
-- KEYS[4] due       zset    due index: bucket number -> bucket start (ms); each bucket is the
--                           hash KEYS[4]..':'..bucket of user id -> due time (ms), the name
--                           Keys.due_bucket builds (the one key a script derives: which buckets
--                           a batch touches is known only here; same hash tag, same slot)
-- KEYS[5] due count string  users in the due index
-- KEYS[6] attempts  string  the head entry's drains that did not commit: cleared by any commit
-- KEYS[7] dead      stream  entries set aside instead of applied (with the reason)
-- KEYS[8..]         member indexes (zset, score 0) and job outboxes (stream), by index
--
-- ARGV: expected version ('' when none), new version, trim MINID ('' = no trim), bucket width
-- (ms), an outbox record's three field names (RECORD_FIELDS, workers/delivery/outbox.py),
-- then sections, each starting with its count:
--   users:     n, then n pairs   (user id, blob)
--   due:       n, then n triples (user id, old due ms or '', new due ms or '')
--   members:   g groups of (key index, n adds, n pairs ('0', user id), m removes, m ids)
--   outboxes:  g groups of (key index, n records, n triples (user id, idempotency key, body)
--              in the order of the field names)
--   set aside: n, then n quadruples (entry id, reason, time ms, entry payload)
--
-- Returns 1, or {0, current version} when another writer committed first (the fence).
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return {0, current} end

local U, K, B = ARGV[5], ARGV[6], ARGV[7]
local i = 8
local CHUNK = 400
local WIDTH = tonumber(ARGV[4])

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

-- Due index: small hashes per time bucket stay in Redis's compact listpack encoding, which costs
-- a fraction of a sorted-set entry per scheduled user.
local n = tonumber(ARGV[i]); i = i + 1
local moved = 0
for _ = 1, n do
  local uid, old, new = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  local old_bucket = old ~= '' and math.floor(tonumber(old) / WIDTH) or nil
  local new_bucket = new ~= '' and math.floor(tonumber(new) / WIDTH) or nil
  if old_bucket and old_bucket ~= new_bucket then
    local key = KEYS[4] .. ':' .. old_bucket
    moved = moved - redis.call('HDEL', key, uid)
    if redis.call('HLEN', key) == 0 then redis.call('ZREM', KEYS[4], old_bucket) end
  end
  if new_bucket then
    moved = moved + redis.call('HSET', KEYS[4] .. ':' .. new_bucket, uid, new)
    redis.call('ZADD', KEYS[4], new_bucket * WIDTH, new_bucket)
  end
end
if moved ~= 0 then redis.call('INCRBY', KEYS[5], moved) end

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
    redis.call('XADD', key, '*', U, ARGV[i], K, ARGV[i + 1], B, ARGV[i + 2])
    i = i + 3
  end
end

n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('XADD', KEYS[7], '*', 'id', ARGV[i], 'why', ARGV[i + 1], 'at', ARGV[i + 2],
             'd', ARGV[i + 3])
  i = i + 4
end

redis.call('DEL', KEYS[6])
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('XTRIM', KEYS[2], 'MINID', ARGV[3]) end
return 1
