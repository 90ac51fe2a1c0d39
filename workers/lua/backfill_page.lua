-- One backfill page: existing members' enter messages into a job's outbox and the cursor moved
-- past them, fenced by the shard version like a drain's commit (workers/jobs/backfill.py).
--
-- KEYS[1] applied   string  shard version: id of the last stream entry committed
-- KEYS[2] cursor    string  the backfill's cursor in this shard (last user id written, 'done')
-- KEYS[3] outbox    stream  the job's outbox in this shard
--
-- ARGV[1] expected version, ARGV[2] new cursor,
-- ARGV[3..5] an outbox record's field names (RECORD_FIELDS, workers/delivery/outbox.py),
-- then one triple per record in that order (user id, idempotency key, body).
--
-- Returns 1, or 0 when a drain committed since the page was read (nothing written).
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
local U, K, B = ARGV[3], ARGV[4], ARGV[5]
for i = 6, #ARGV, 3 do
  redis.call('XADD', KEYS[3], '*', U, ARGV[i], K, ARGV[i + 1], B, ARGV[i + 2])
end
redis.call('SET', KEYS[2], ARGV[2])
return 1
