-- Extend a lease, only if this holder still has it (workers/lease.py).
--
-- KEYS[1] lease   string  token of the holder
-- ARGV[1] this holder's token, ARGV[2] new time to live (ms)
--
-- Returns 1 when extended, 0 when the lease had expired or passed to another holder.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
