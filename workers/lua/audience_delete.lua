-- Remove an audience definition if no definition changed since the caller checked that nothing
-- depends on it (workers/audiences/delete.py).
--
-- KEYS[1] registry version  string  bumped on every audience/job/auth change
-- KEYS[2] audiences         hash    audience id -> definition (JSON)
-- KEYS[3] audience slugs    hash    slug -> audience id
-- ARGV[1] expected version, ARGV[2] audience id, ARGV[3] slug
--
-- Returns 1 when deleted (and the version bumped), 0 when the version moved.
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[2])
if redis.call('HGET', KEYS[3], ARGV[3]) == ARGV[2] then redis.call('HDEL', KEYS[3], ARGV[3]) end
redis.call('INCR', KEYS[1])
return 1
