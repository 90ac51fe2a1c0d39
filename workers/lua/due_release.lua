-- Release a shard's due users: take each user whose time came out of the due index and append
-- a re-evaluation entry for it to the shard's stream, atomically (workers/schedule/due_index.py).
--
-- KEYS[1] due        zset    due index: bucket number -> bucket start (ms); each bucket is the
--                            hash KEYS[1]..':'..bucket of user id -> due time (ms), the name
--                            Keys.due_bucket builds
-- KEYS[2] due count  string  users in the due index
-- KEYS[3] events     stream  the shard's input
--
-- ARGV[1] now (ms), ARGV[2] most users to release
--
-- Returns the due times (ms) of the users released.
local released = {}
local limit = tonumber(ARGV[2])
local now = tonumber(ARGV[1])
local buckets = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, bucket in ipairs(buckets) do
  local key = KEYS[1] .. ':' .. bucket
  local entries = redis.call('HGETALL', key)
  for i = 1, #entries, 2 do
    if #released >= limit then break end
    local due = tonumber(entries[i + 1])
    if due <= now then
      redis.call('XADD', KEYS[3], '*', 'd', cjson.encode({k = 'r', u = entries[i]}))
      redis.call('HDEL', key, entries[i])
      released[#released + 1] = entries[i + 1]
    end
  end
  if redis.call('HLEN', key) == 0 then redis.call('ZREM', KEYS[1], bucket) end
  if #released >= limit then break end
end
if #released > 0 then redis.call('DECRBY', KEYS[2], #released) end
return released
