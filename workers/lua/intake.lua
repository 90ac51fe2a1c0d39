-- The intake: one request's events appended to their shard streams, all of them or none.
--
-- KEYS[1]           token   string  this write's outcome, kept for a few minutes: a client retry
--                                   of the same call (a reply lost on a dropped connection) gets
--                                   the first answer instead of appending again
-- then per shard group, in order:
--   events          stream  the shard's input (KEYS[k])
--   seen buckets    sets    digests of event ids per time bucket, newest first (0 or more)
-- then, when the kick TTL is given, per group its drain kick flag (its drain group's: groups of
-- one drain group name the same flag, and only the first of them can find it free); then, when
-- asked to count, the metrics hash.
--
-- ARGV: token TTL (ms), backlog limit per shard, seen-bucket TTL (ms), groups,
-- then per group: number of seen-bucket keys, number of events, then per event its stream entry,
-- after its id digest (or '') when the group has seen buckets (alone when it has none); then
-- optionally: kick TTL (s, 0 for none), and the metrics hash's field names for stored and for
-- duplicate events (none: not counted here).
--
-- Returns {1, stored, duplicates, fresh groups...}; {2, 'stored duplicates'} for a replayed write
-- (nothing written again); {0, group, length} when a shard holds more than the backlog limit
-- (nothing written). The fresh groups are those whose kick flag was free (SET NX): the caller
-- queues a drain for each, as workers/kicks.py does, without a round trip of its own; counting
-- adds stored and duplicates to the metrics hash, so a request is one call to Redis.
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
  if buckets > 0 then i = i + 2 + 2 * n else i = i + 2 + n end
end

-- Which ids were seen within the window: one SMISMEMBER per bucket for a group's ids (in slices,
-- as Lua's unpack takes a few thousand values at most).
local SLICE = 1000
local function seen_before(k, buckets, digests)
  local seen = {}
  for b = 1, buckets do
    for first = 1, #digests, SLICE do
      local last = math.min(first + SLICE - 1, #digests)
      local found = redis.call('SMISMEMBER', KEYS[k + b], unpack(digests, first, last))
      for j = 1, #found do
        if found[j] == 1 then seen[digests[first + j - 1]] = true end
      end
    end
  end
  return seen
end

-- Pass 2: drop repeats of ids seen within the window (or earlier in this request), append the
-- rest, remember their ids. A group without seen buckets has no ids to look for: its entries
-- come alone, not in pairs, and are all appended.
local stored, duplicates = 0, 0
k, i = 2, 5
for _ = 1, groups do
  local stream = KEYS[k]
  local buckets, n = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  if buckets == 0 then
    for j = i, i + n - 1 do redis.call('XADD', stream, '*', 'd', ARGV[j]) end
    stored = stored + n
    i = i + n
  else
    local digests = {}
    for j = 0, n - 1 do
      local digest = ARGV[i + 2 * j]
      if digest ~= '' then digests[#digests + 1] = digest end
    end
    local seen = {}
    if #digests > 0 then seen = seen_before(k, buckets, digests) end
    local fresh, remember = {}, {}
    for _ = 1, n do
      local digest, entry = ARGV[i], ARGV[i + 1]
      i = i + 2
      if digest ~= '' and (fresh[digest] or seen[digest]) then
        duplicates = duplicates + 1
      else
        redis.call('XADD', stream, '*', 'd', entry)
        stored = stored + 1
        if digest ~= '' then
          fresh[digest] = true
          remember[#remember + 1] = digest
        end
      end
    end
    for first = 1, #remember, SLICE do
      redis.call('SADD', KEYS[k + 1], unpack(remember, first, math.min(first + SLICE - 1, #remember)))
    end
    if #remember > 0 then redis.call('PEXPIRE', KEYS[k + 1], ARGV[3]) end
  end
  k = k + 1 + buckets
end

redis.call('SET', KEYS[1], stored .. ' ' .. duplicates, 'PX', ARGV[1])
local answer = {1, stored, duplicates}
local kick_ttl = tonumber(ARGV[i] or '0')
if kick_ttl > 0 then
  for g = 1, groups do
    if redis.call('SET', KEYS[k], 1, 'NX', 'EX', kick_ttl) then answer[#answer + 1] = g end
    k = k + 1
  end
end
if ARGV[i + 2] then
  if stored > 0 then redis.call('HINCRBY', KEYS[k], ARGV[i + 1], stored) end
  if duplicates > 0 then redis.call('HINCRBY', KEYS[k], ARGV[i + 2], duplicates) end
end
return answer
