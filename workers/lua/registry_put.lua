-- Store one definition if no definition changed since the caller read the registry version
-- (a compare-and-set: workers/audiences/registry_store.py).
--
-- KEYS[1] registry version  string  bumped on every audience/job/auth change
-- KEYS[2] definitions       hash    id -> definition (JSON)
-- ARGV[1] expected version, ARGV[2] definition id, ARGV[3] definition (JSON)
--
-- Returns 1 when stored (and the version bumped), 0 when the version moved.
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('INCR', KEYS[1])
return 1
