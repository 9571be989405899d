-- Releases a stampede lock if the caller still holds it, and wakes its waiters with the token.
-- KEYS: the lock, the wake list. ARGV: the holder's token, the wake list's lifetime in ms.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
