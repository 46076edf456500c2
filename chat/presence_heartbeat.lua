-- Renew presence leases in one round trip, run inside Redis (chat/presence_redis.py).
-- ARGV[1]: lease expiry (unix seconds); ARGV[2]: key lifetime (seconds);
-- then one triple per socket: user id, socket id, "1" if a specialist else "0".
-- The keys are built here from the same prefixes as presence_redis.py; single-node Redis.
local expiry, keep = ARGV[1], ARGV[2]
for i = 3, #ARGV, 3 do
  local user, conn = ARGV[i], ARGV[i + 1]
  local key = 'pc:presence:user:' .. user
  redis.call('ZADD', key, expiry, conn)
  redis.call('EXPIRE', key, keep)
  if ARGV[i + 2] == '1' then
    redis.call('ZADD', 'pc:presence:specialists', 'GT', expiry, user)
    redis.call('DEL', 'pc:presence:absent:' .. user)
  end
end
return (#ARGV - 2) / 3
