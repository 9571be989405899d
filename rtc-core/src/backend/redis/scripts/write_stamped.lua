-- Stamps entries with their tags' current versions and writes them, atomically: every tag is
-- read (or created) once, before any entry is written.
-- A tag with no version, or with bytes that are not a version (8 bytes), gets the proposed one;
-- a tag key of another type is an error (WRONGTYPE): no entry is written.
-- KEYS: the tags (each once), then the entries.
-- ARGV: number of tags, tag lifetime in ms (0: none), entry lifetime in ms (0: none), then per
--       tag a proposed version, then per entry: header, payload, its number of tags n, and n
--       pairs (the tag's position in KEYS, the bytes stored before its version).
local tags = tonumber(ARGV[1])
local tag_ttl = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local versions = {}
for i = 1, tags do
  local current = redis.call('GET', KEYS[i])
  if (not current) or string.len(current) ~= 8 then
    current = ARGV[3 + i]
    if tag_ttl > 0 then
      redis.call('SET', KEYS[i], current, 'PX', tag_ttl)
    else
      redis.call('SET', KEYS[i], current)
    end
  end
  versions[i] = current
end
local at = 4 + tags
for entry = tags + 1, #KEYS do
  local parts = { ARGV[at] }
  local payload = ARGV[at + 1]
  local count = tonumber(ARGV[at + 2])
  at = at + 3
  for _ = 1, count do
    parts[#parts + 1] = ARGV[at + 1]
    parts[#parts + 1] = versions[tonumber(ARGV[at])]
    at = at + 2
  end
  parts[#parts + 1] = payload
  if ttl > 0 then
    redis.call('SET', KEYS[entry], table.concat(parts), 'PX', ttl)
  else
    redis.call('SET', KEYS[entry], table.concat(parts))
  end
end
return 1
