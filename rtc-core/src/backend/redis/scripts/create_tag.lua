-- Gives a tag a version unless it has one: returns the version it has afterwards.
-- Bytes that are not a version (not 8 bytes) are replaced, so a corrupt tag is repaired by the
-- next writer instead of refusing every write, as the set script does. A key of another type is
-- an error (WRONGTYPE), as it is for the set script.
-- KEYS: the tag. ARGV: the proposed version, the tag lifetime in ms (0: none).
local current = redis.call('GET', KEYS[1])
if current and string.len(current) == 8 then
  return current
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return ARGV[1]
