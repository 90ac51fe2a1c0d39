-- One backfill page: existing members' enter messages into a job's outbox and the cursor moved
-- past them, fenced by the shard version like a drain's commit (workers/jobs/backfill.py).
--
-- KEYS[1] applied   string  shard version: id of the last stream entry committed
-- KEYS[2] cursor    string  the backfill's cursor in this shard (last user id written, 'done')
-- KEYS[3] outbox    stream  the job's outbox in this shard
--
-- ARGV[1] expected version, ARGV[2] new cursor,
-- ARGV[3..5] an outbox record's field names (RECORD_FIELDS, workers/delivery/outbox.py),
-- ARGV[6] the records' value lengths, ARGV[7] their values end to end (none: both absent), as
-- workers/delivery/outbox.py packs them: per record its user id, idempotency key and body, each
-- length an unsigned 32-bit little-endian integer. Two arguments, not three per record: a
-- page's thousands of arguments cost the client more to send than everything else in the call.
--
-- Returns 1, or 0 when a drain committed since the page was read (nothing written).
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
local U, K, B = ARGV[3], ARGV[4], ARGV[5]
local lengths, values = ARGV[6] or '', ARGV[7] or ''
local pos = 1
for at = 1, #lengths, 12 do
  local u, k, b = struct.unpack('<I4I4I4', lengths, at)
  local k_at = pos + u
  local b_at = k_at + k
  local next_pos = b_at + b
  redis.call('XADD', KEYS[3], '*', U, string.sub(values, pos, k_at - 1),
    K, string.sub(values, k_at, b_at - 1), B, string.sub(values, b_at, next_pos - 1))
  pos = next_pos
end
redis.call('SET', KEYS[2], ARGV[2])
return 1
