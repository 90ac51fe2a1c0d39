-- The intake: one request's events appended to their shard streams, all of them or none.
--
-- KEYS[1]           token   string  this write's outcome, kept for a few minutes: a client retry
--                                   of the same call (a reply lost on a dropped connection) gets
--                                   the first answer instead of appending again
-- then per shard group, in order:
--   events          stream  the shard's input (KEYS[k])
--   seen buckets    sets    digests of event ids per time bucket, newest first (0 or more)
--
-- ARGV: token TTL (ms), backlog limit per shard, seen-bucket TTL (ms), groups,
-- then per group: number of seen-bucket keys, number of events, then per event
-- (id digest or '', stream entry).
--
-- Returns {1, stored, duplicates}; {2, 'stored duplicates'} for a replayed write (nothing
-- written again); {0, group, length} when a shard holds more than the backlog limit (nothing
-- written).
--
-- Nothing is written before every check passed, and Redis refuses a script for lack of memory
-- only at its first write, never half-way: so a refusal (OOM, READONLY...) leaves nothing stored.
local done = redis.call('GET', KEYS[1])
if done then return {2, done} end

local limit = tonumber(ARGV[2])
local groups = tonumber(ARGV[4])

-- Pass 1, reads only: every shard has room.
local k, i = 2, 5
for g = 1, groups do
  local buckets, n = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local length = redis.call('XLEN', KEYS[k])
  if length >= limit then return {0, g, length} end
  k = k + 1 + buckets
  i = i + 2 + 2 * n
end

-- Pass 2: drop repeats of ids seen within the window (or earlier in this request), append the
-- rest, remember their ids.
local stored, duplicates = 0, 0
k, i = 2, 5
for _ = 1, groups do
  local stream = KEYS[k]
  local buckets, n = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  local fresh = {}
  for _ = 1, n do
    local digest, entry = ARGV[i], ARGV[i + 1]
    i = i + 2
    local repeat_ = false
    if digest ~= '' then
      if fresh[digest] then
        repeat_ = true
      else
        for b = 1, buckets do
          if redis.call('SISMEMBER', KEYS[k + b], digest) == 1 then
            repeat_ = true
            break
          end
        end
      end
    end
    if repeat_ then
      duplicates = duplicates + 1
    else
      redis.call('XADD', stream, '*', 'd', entry)
      stored = stored + 1
      if digest ~= '' then
        fresh[digest] = true
        redis.call('SADD', KEYS[k + 1], digest)
      end
    end
  end
  if next(fresh) ~= nil then redis.call('PEXPIRE', KEYS[k + 1], ARGV[3]) end
  k = k + 1 + buckets
end

redis.call('SET', KEYS[1], stored .. ' ' .. duplicates, 'PX', ARGV[1])
return {1, stored, duplicates}
