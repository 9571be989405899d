-- Writes an entry unless it was deleted since the writer read it: the entry there now must be of
-- the lineage the writer read (format::lineage in rtc-core): the same tombstone, an entry of
-- format 4 descending from it, or, when the writer read no lineage, an entry of none or no key.
-- A writer that read a lineage finds no key when its tombstone expired or was lost: refused.
-- KEYS: the entry. ARGV: bytes, lifetime in ms (0: none), the tombstone the writer read ("": none).
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' then
  -- A key of another type (WRONGTYPE): nothing rtc wrote, so the write replaces it.
  current = false
end
if current then
  local format = string.byte(current, 1)
  local lineage = ''
  if format == 0 then
    lineage = current
  elseif format == 4 and #current >= 17 then
    -- Format 4: the tombstone's token follows the counts (4 bytes) and the window (4 bytes).
    lineage = '\0' .. string.sub(current, 10, 17)
  end
  if lineage ~= ARGV[3] then
    return 0
  end
elseif ARGV[3] ~= '' then
  return 0
end
local bytes = ARGV[1]
local ttl = tonumber(ARGV[2])
if current and ARGV[3] ~= '' and ttl > 0 then
  -- Written over its lineage: the key lives at least as long as the entry it replaces had
  -- left, its stale window (format 4: bytes 6 to 9, little endian) widened by as much, so that
  -- the value is fresh no longer and the tombstone's guard lasts its whole lifetime.
  local left = redis.call('PTTL', KEYS[1])
  if left > ttl then
    local window = struct.unpack('<I4', bytes, 6)
    window = math.min(window + (left - ttl), 4294967295)
    bytes = string.sub(bytes, 1, 5) .. struct.pack('<I4', window) .. string.sub(bytes, 10)
    ttl = left
  end
end
if ttl > 0 then
  redis.call('SET', KEYS[1], bytes, 'PX', ttl)
else
  redis.call('SET', KEYS[1], bytes)
end
return 1
