"""The Lua scripts of Redis presence (chat/presence_redis.py), one round trip each.

Keys are named inside the scripts from the same prefixes as presence_redis.py, so the
scripts that name people's keys in ARGV run on one Redis or a Sentinel master only; on a
Redis Cluster presence_redis.py pipelines the same commands instead. The scripts that
take KEYS touch only `{pc:presence}` keys, one slot, and run anywhere.
"""

from __future__ import annotations

# The keys, as the scripts spell them too.
USER = "pc:presence:user:"  # + a person's keyed name: their sockets' members
ABSENT = "pc:presence:absent:"  # + a specialist's keyed name: since when they are gone
# Counts specialists who went offline by a close (and removals repeated by a rewrite):
# `departures`.
LEFT = "{pc:presence}:left"
ABSENT_KEEP_S = 24 * 3600  # long after any grace; only bounds what a vanished user leaves

# Write sockets' members. ARGV[1]: score (the lease's expiry when written, for a reader's
# eyes only), ARGV[2]: key lifetime (s), ARGV[3]: this process's specialists set, then one
# triple per socket: the person's keyed name, the member, and the specialist's id for a
# specialist, else "". The keys are named in ARGV: one Redis or a Sentinel master only (a
# Cluster pipelines the same commands). Returns the specialists whose absence mark it
# removed (their members were told `reconnecting`: see `returned`).
WRITE = """
local specialists, back = false, {}
for i = 4, #ARGV, 3 do
  local key = 'pc:presence:user:' .. ARGV[i]
  redis.call('ZADD', key, ARGV[1], ARGV[i + 1])
  redis.call('EXPIRE', key, ARGV[2])
  if ARGV[i + 2] ~= '' then
    if redis.call('DEL', 'pc:presence:absent:' .. ARGV[i]) == 1 then back[#back + 1] = ARGV[i + 2] end
    redis.call('SADD', ARGV[3], ARGV[i + 2])
    specialists = true
  end
end
if specialists then redis.call('EXPIRE', ARGV[3], ARGV[2]) end
return back
"""
# Shared by the readers below: whether a member's process lease runs past `now`.
LIVE = """
local procs, now, known = '{pc:presence}:procs', tonumber(ARGV[1]), {}
local function live(member)
  local p = string.match(member, '^(.-)|')
  if p == nil then return false end
  local yes = known[p]
  if yes == nil then
    yes = tonumber(redis.call('ZSCORE', procs, p) or '0') > now
    known[p] = yes
  end
  return yes
end
local function online(key, clean)
  local found = false
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if live(m) then
      found = true
      if not clean then return true end
    elseif clean then
      redis.call('ZREM', key, m)
    end
  end
  return found
end
"""
# ARGV[1]: now; then keyed names of people of one role. Returns the (1-based) positions of
# those with no socket under a live process.
OFFLINE = (
    LIVE
    + """
local offline = {}
for i = 2, #ARGV do
  if not online('pc:presence:user:' .. ARGV[i], false) then offline[#offline + 1] = i - 1 end
end
return offline
"""
)
# A socket closes. ARGV: now, name, member, this process's specialists set or "" (the
# specialist keeps another socket here, or is no specialist), the specialist's id or "",
# the absence mark's lifetime. Drops members of dead processes met on the way. 1 if the
# person has no socket left under a live process (a specialist is then marked absent).
LEAVE = (
    LIVE
    + """
local key = 'pc:presence:user:' .. ARGV[2]
redis.call('ZREM', key, ARGV[3])
if ARGV[4] ~= '' then redis.call('SREM', ARGV[4], ARGV[5]) end
if online(key, true) then return 0 end
if ARGV[5] ~= '' then
  redis.call('SET', 'pc:presence:absent:' .. ARGV[2], ARGV[1], 'EX', ARGV[6])
  redis.call('INCR', '{pc:presence}:left')
end
return 1
"""
)
# KEYS[1]: the processes' set (every key here shares its slot). ARGV[1]: now, ARGV[2]: "1"
# to list the specialists, "0" for the mark only. Returns {the mark, the specialists with a
# socket on a live process}. The mark names each live process with its specialists set's
# size and generation (`REPLACE`): it changes when a lease starts or lapses and whenever
# a set changes unpoked (see `RedisPresence.specialists_mark`), and costs one SCARD and
# one GET a process, not the 2,000 ids of the union.
SPECIALISTS = """
local mark, out = {}, {}
for _, p in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')) do
  local key = '{pc:presence}:proc:' .. p .. ':specialists'
  mark[#mark + 1] = p .. ' ' .. redis.call('SCARD', key) .. ' ' .. (redis.call('GET', key .. ':gen') or '0')
  if ARGV[2] == '1' then
    for _, s in ipairs(redis.call('SMEMBERS', key)) do
      out[#out + 1] = s
    end
  end
end
return {mark, out}
"""
# KEYS[1]: this process's specialists set, KEYS[2]: its generation. ARGV[1]: their
# lifetime, then the set's members: the set replaced at once, so no reader sees it half
# written. The generation moves on when the members differ from what the set held (a
# connect or a close whose own write failed, now written by the rewrite: nobody poked the
# matchmaker for it, and its size alone may not show it, one in and one out).
REPLACE = """
local n = #ARGV - 1
local same = redis.call('SCARD', KEYS[1]) == n
if same and n > 0 then
  for _, yes in ipairs(redis.call('SMISMEMBER', KEYS[1], unpack(ARGV, 2))) do
    if yes == 0 then
      same = false
      break
    end
  end
end
if not same then
  redis.call('DEL', KEYS[1])
  if n > 0 then redis.call('SADD', KEYS[1], unpack(ARGV, 2)) end
  redis.call('INCR', KEYS[2])
end
if n > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
redis.call('EXPIRE', KEYS[2], ARGV[1])
return n
"""
# KEYS[1]: the processes' set. ARGV[1]: a specialist's id, removed from every process's
# set (an erasure).
FORGET_SPECIALIST = """
for _, p in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  redis.call('SREM', '{pc:presence}:proc:' .. p .. ':specialists', ARGV[1])
end
return 1
"""
