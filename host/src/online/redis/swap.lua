-- fvhost: compare-and-set of hash fields, atomically per key (see mod.rs).
-- KEYS: one Redis hash per entity.
-- ARGV: ttl_seconds (0: none), then per key: guard field, '1' if a value is
--       expected ('0': the field must be absent), the prefix it must start with,
--       n (fields to set), then n field/value pairs.
-- Returns, per key, 1 if the guard held and the fields were set, else 0.
local ttl = tonumber(ARGV[1])
local at = 2
local results = {}
for k = 1, #KEYS do
  local guard, expects, expected = ARGV[at], ARGV[at + 1] == '1', ARGV[at + 2]
  local n = tonumber(ARGV[at + 3])
  local current = redis.call('HGET', KEYS[k], guard)
  local holds
  if expects then
    holds = current ~= false and string.sub(current, 1, #expected) == expected
  else
    holds = current == false
  end
  if holds then
    local args = {}
    for i = 0, n - 1 do
      args[2 * i + 1] = ARGV[at + 4 + 2 * i]
      args[2 * i + 2] = ARGV[at + 5 + 2 * i]
    end
    redis.call('HSET', KEYS[k], unpack(args))
    if ttl > 0 then redis.call('EXPIRE', KEYS[k], ttl) end
    results[k] = 1
  else
    results[k] = 0
  end
  at = at + 4 + 2 * n
end
return results
