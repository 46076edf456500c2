-- Renew presence leases in one round trip, run inside Redis (chat/presence_redis.py).
-- ARGV[1]: lease expiry (unix seconds); ARGV[2]: key lifetime (seconds);
-- then one triple per socket: the person's keyed name (an HMAC of role and sub, never the
-- account id), socket id, and the specialist's id for a specialist, else "".
-- The keys are built here from the same prefixes as presence_redis.py, so this runs on one
-- Redis or a Sentinel master only; on a Redis Cluster presence_redis.py pipelines the same
-- commands instead (a script may not touch keys of several slots there).
local expiry, keep = ARGV[1], ARGV[2]
for i = 3, #ARGV, 3 do
  local name, conn, specialist = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = 'pc:presence:user:' .. name
  redis.call('ZADD', key, expiry, conn)
  redis.call('EXPIRE', key, keep)
  if specialist ~= '' then
    redis.call('ZADD', 'pc:presence:specialists', 'GT', expiry, specialist)
    redis.call('DEL', 'pc:presence:absent:' .. name)
  end
end
return (#ARGV - 2) / 3
