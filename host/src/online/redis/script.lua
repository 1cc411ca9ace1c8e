-- fvhost: atomic newer-wins write of one view's rows (see writer.rs).
-- KEYS: one Redis hash per entity.
-- ARGV: ts_field, ttl_seconds (0: none), check (1: newer-wins, 0: blind),
--       n_fields, field names..., then per key: seconds, nanos, ts bytes, values...
-- The HSET's field/value pairs are spelled out for the view's feature count
-- (writer.rs fills in --[[FIELDS]]): no table is built per key.
-- Returns the number of keys written.
local function stored_time(bytes)
  local seconds, nanos, i, n = 0, 0, 1, #bytes
  while i <= n do
    local tag = string.byte(bytes, i)
    i = i + 1
    local value, scale = 0, 1
    repeat
      local b = string.byte(bytes, i)
      i = i + 1
      value = value + (b % 128) * scale
      scale = scale * 128
    until b < 128 or i > n
    if value >= 9223372036854775808 then value = value - 18446744073709551616 end
    if tag == 8 then seconds = value elseif tag == 16 then nanos = value end
  end
  return seconds, nanos
end

local ts_field = ARGV[1]
local ttl = tonumber(ARGV[2])
local check = ARGV[3] == '1'
local n_fields = tonumber(ARGV[4])
local per_key = 3 + n_fields
local base = 4 + n_fields
local written = 0
for k = 1, #KEYS do
  local at = base + (k - 1) * per_key
  local seconds, nanos = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  local newer = true
  if check then
    local stored = redis.call('HGET', KEYS[k], ts_field)
    if stored then
      local s, ns = stored_time(stored)
      newer = seconds > s or (seconds == s and nanos > ns)
    end
  end
  if newer then
    redis.call('HSET', KEYS[k], ts_field, ARGV[at + 3]--[[FIELDS]])
    if ttl > 0 then redis.call('EXPIRE', KEYS[k], ttl) end
    written = written + 1
  end
end
return written
