/**
 * Moves a job to a new state, atomically, unless it is missing, terminal, or already there. A terminal
 * move appends the end entry to the token stream and starts the retention TTL.
 *
 * KEYS[1] meta hash, KEYS[2] token stream (same hash tag)
 * ARGV[1] target state, ARGV[2] error ('' for none), ARGV[3] time (ms), ARGV[4] retention ms (-1: keep),
 * ARGV[5] token count (-1: leave as is)
 * Returns the previous state when it moved, nil otherwise.
 */
export const TRANSITION = `
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return false end
if state == 'completed' or state == 'failed' or state == 'cancelled' or state == ARGV[1] then return false end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_at', ARGV[3])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[2]) end
if tonumber(ARGV[5]) >= 0 then redis.call('HSET', KEYS[1], 'token_count', ARGV[5]) end
if ARGV[1] == 'completed' or ARGV[1] == 'failed' or ARGV[1] == 'cancelled' then
  redis.call('XADD', KEYS[2], '*', 'end', ARGV[1], 'error', ARGV[2])
  local ttl = tonumber(ARGV[4])
  if ttl >= 0 then
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
end
return state
`;
