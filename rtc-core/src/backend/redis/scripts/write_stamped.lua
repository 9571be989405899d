-- Writes entries, each stamped with its tags' current versions, atomically: every tag is read
-- (or created) once, before any entry is written. Every write of an entry, by `set` or by a
-- decorated computation, goes through here.
-- A tag with no version, or with bytes that are not a version (8 bytes), gets the proposed one;
-- a tag key of another type is an error (WRONGTYPE): no entry is written.
--
-- Lineage (format::lineage in rtc-core): a tombstone, or an entry of format 4, carries the
-- token of a delete. An entry written where one of those is keeps that token (format 4) and
-- lives at least as long as what it replaces had left, its stale window widened by as much, so
-- that it is fresh no longer than its own lifetime while the delete's guard lasts.
-- A guarded write (a decorated computation's) is written only over the lineage its writer read
-- before computing: the same token, or, when it read none, an entry of none or no key; a writer
-- that read a lineage and finds no key (its tombstone expired or was lost) writes nothing.
--
-- KEYS: the tags (each once), then the entries.
-- ARGV: number of tags, tag lifetime in ms (0: none), entry lifetime in ms (0: none), then per
--       tag a proposed version, then per entry: header, payload, guard ('*': none; else the
--       lineage its writer read, '' for none), its number of tags n, and n pairs (the tag's
--       position in KEYS, the bytes stored before its version).
-- Returns how many entries were written.

-- The lineage's token of the stored bytes `current` (nil: none).
local function token_of(current)
  local format = string.byte(current, 1)
  if format == 0 and #current >= 9 then
    return string.sub(current, 2, 9)
  elseif format == 4 and #current >= 17 then
    -- Format 4: the token follows the counts (4 bytes) and the window (4 bytes).
    return string.sub(current, 10, 17)
  end
  return nil
end

-- `bytes` (format 2, 3 or 4) as a format 4 entry of lineage `token`, its window widened by
-- `widen` ms.
local function with_lineage(bytes, token, widen)
  local format = string.byte(bytes, 1)
  local window, rest = 0, nil
  if format == 2 then
    rest = string.sub(bytes, 6)
  elseif format == 3 then
    window, rest = struct.unpack('<I4', bytes, 6), string.sub(bytes, 10)
  elseif format == 4 then
    window, rest = struct.unpack('<I4', bytes, 6), string.sub(bytes, 18)
  else
    return bytes
  end
  window = math.min(window + widen, 4294967295)
  return string.char(4) .. string.sub(bytes, 2, 5) .. struct.pack('<I4', window) .. token .. rest
end

-- Writes `bytes` under `key` for `ttl` ms (0: none), unless `guard` refuses it.
local function store(key, bytes, ttl, guard)
  local current = redis.pcall('GET', key)
  if type(current) ~= 'string' then
    -- No key, or a key of another type (WRONGTYPE): nothing rtc wrote.
    current = nil
  end
  local token = current and token_of(current)
  if guard ~= '*' then
    local lineage = token and (string.char(0) .. token) or ''
    if current and lineage ~= guard then
      return 0
    end
    if not current and guard ~= '' then
      return 0
    end
  end
  if token then
    local widen = 0
    if ttl > 0 then
      local left = redis.call('PTTL', key)
      if left > ttl then
        widen = left - ttl
        ttl = left
      end
    end
    bytes = with_lineage(bytes, token, widen)
  end
  if ttl > 0 then
    redis.call('SET', key, bytes, 'PX', ttl)
  else
    redis.call('SET', key, bytes)
  end
  return 1
end

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
local written = 0
for entry = tags + 1, #KEYS do
  local parts = { ARGV[at] }
  local payload = ARGV[at + 1]
  local guard = ARGV[at + 2]
  local count = tonumber(ARGV[at + 3])
  at = at + 4
  for _ = 1, count do
    parts[#parts + 1] = ARGV[at + 1]
    parts[#parts + 1] = versions[tonumber(ARGV[at])]
    at = at + 2
  end
  parts[#parts + 1] = payload
  written = written + store(KEYS[entry], table.concat(parts), ttl, guard)
end
return written
