-- Writes an entry unless it was deleted (a tombstone other than the one the writer read is there).
-- KEYS: the entry. ARGV: bytes, lifetime in ms (0: none), the tombstone the writer read ("": none).
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' then
  -- A key of another type (WRONGTYPE): nothing rtc wrote, so the write replaces it.
  current = false
end
if current and string.byte(current, 1) == 0 and current ~= ARGV[3] then
  return 0
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
