-- Let go of a lease, only if this holder still has it (workers/lease.py).
--
-- KEYS[1] lease   string  token of the holder
-- ARGV[1] this holder's token
--
-- Returns 1 when released, 0 when the lease had expired or passed to another holder.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
