-- Give every audience that has none yet the next small number, never reusing one
-- (workers/audiences/numbers.py).
--
-- KEYS[1] numbers      hash    audience id -> number
-- KEYS[2] last number  string  the last number given
-- ARGV    the audience ids to number
--
-- Returns every number ever given, as HGETALL pairs (id, number).
for _, id in ipairs(ARGV) do
  if redis.call('HEXISTS', KEYS[1], id) == 0 then
    redis.call('HSET', KEYS[1], id, redis.call('INCR', KEYS[2]))
  end
end
return redis.call('HGETALL', KEYS[1])
