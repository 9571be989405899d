-- Stamps an entry with every tag's current version and writes it, atomically.
-- A tag with no version, or with bytes that are not a version (8 bytes), gets the proposed one;
-- a tag key of another type is an error (WRONGTYPE): the write is refused.
-- KEYS: the entry, then its tags.
-- ARGV: header, payload, entry lifetime in ms (0: none), tag lifetime in ms (0: none),
--       then per tag the bytes stored before its version and a proposed version.
local parts = { ARGV[1] }
local tag_ttl = tonumber(ARGV[4])
for i = 2, #KEYS do
  local before = ARGV[3 + 2 * (i - 1)]
  local proposed = ARGV[4 + 2 * (i - 1)]
  local current = redis.call('GET', KEYS[i])
  if (not current) or string.len(current) ~= 8 then
    if tag_ttl > 0 then
      redis.call('SET', KEYS[i], proposed, 'PX', tag_ttl)
    else
      redis.call('SET', KEYS[i], proposed)
    end
    current = proposed
  end
  parts[#parts + 1] = before
  parts[#parts + 1] = current
end
parts[#parts + 1] = ARGV[2]
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], table.concat(parts), 'PX', ttl)
else
  redis.call('SET', KEYS[1], table.concat(parts))
end
return 1
