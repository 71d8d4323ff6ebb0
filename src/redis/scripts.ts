/**
 * Lua scripts. Each touches one job's keys and its shard's keys, which share a hash tag (one cluster
 * slot), so each runs atomically on Redis and on Redis Cluster. A state change and its event are written
 * together: the event stream carries exactly the transitions Redis kept, in the order it kept them.
 * A keyed job's key record shares that hash tag too (see keys.ts): CREATE claims it, and every script
 * that ends or removes a job frees it when it names the job, naming the record from the job hash's base
 * and the hash's `key` field (so a process ending a job it does not hold, the reaper, need not know it).
 *
 * Shared ARGV tail of every script (after the script's own ARGV):
 *   job id, origin (the writing process), events MAXLEN (approximate), shard TTL ms (-1: none)
 */

/** Appends one registry event to the shard's stream and refreshes the shard keys' TTL. */
const EVENT = `
local function event(events, maxlen, ttl, fields)
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', unpack(fields))
  if ttl >= 0 then redis.call('PEXPIRE', events, ttl) end
end
local function terminal(s) return s == 'completed' or s == 'failed' or s == 'cancelled' end
-- Frees a key whose record still names this job; meta is the job hash (<base>job:<id>).
local function unclaim(meta, id, key)
  if not key or key == '' then return end
  local record = string.sub(meta, 1, #meta - #id - 4) .. 'key:' .. key
  if redis.pcall('GET', record) == id then redis.call('DEL', record) end
end
`;

/**
 * Creates a job. A keyed create (command `jrCreateKeyed`) also claims the job's key: when the key record
 * names another job whose hash is live (there, not terminal), `refuse` creates the job already ended
 * `cancelled` with the given error (an index entry, an end entry, the retention TTL: a job like any
 * other, which nothing brings back to life) and leaves the key to that job; `replace` gives the key to
 * the new job (the caller then cancels the other). A record naming a missing or ended job is free.
 *
 * KEYS[1] job hash, KEYS[2] shard events, KEYS[3] shard job index, KEYS[4] shard live hash; a keyed
 * create adds KEYS[5] the key record, KEYS[6] the job's token stream.
 * ARGV[1] created at (ms), ARGV[2] live TTL ms of the job hash, ARGV[3] the owner's replayLimit ('inf'
 * for all), ARGV[4] the principal that created it ('' for none), then the shared tail (ARGV[5..8]); a
 * keyed create adds ARGV[9] the key, ARGV[10] 'refuse' or 'replace', ARGV[11] the error of a refused
 * create, ARGV[12] retention ms (-1: keep).
 * (The hash's `owner` is the process that holds the job; `principal` is who created it.)
 * Returns 0 when the job hash exists; else 1, or for a keyed create {'claimed'} | {'replaced', holder}
 * | {'busy', holder} (holder: the live job of the key).
 */
export const CREATE = `${EVENT}
local id, origin, maxlen, ttl = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local keyed, holder = KEYS[5] ~= nil, false
if keyed then
  local named = redis.pcall('GET', KEYS[5])
  if type(named) == 'string' and named ~= id then
    local state = redis.pcall('HGET', string.sub(KEYS[1], 1, #KEYS[1] - #id) .. named, 'state')
    if type(state) == 'string' and not terminal(state) then holder = named end
  end
end
local refused = holder and ARGV[10] == 'refuse'
redis.call('HSET', KEYS[1], 'state', refused and 'cancelled' or 'queued', 'created_at', ARGV[1],
  'updated_at', ARGV[1], 'owner', origin, 'limit', ARGV[3])
local created = {'type', 'created', 'job', id, 'at', ARGV[1], 'origin', origin}
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'principal', ARGV[4])
  table.insert(created, 'principal'); table.insert(created, ARGV[4])
end
if keyed then
  redis.call('HSET', KEYS[1], 'key', ARGV[9])
  table.insert(created, 'key'); table.insert(created, ARGV[9])
end
redis.call('ZADD', KEYS[3], ARGV[1], id)
if ttl >= 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
if refused then
  redis.call('HSET', KEYS[1], 'error', ARGV[11], 'token_count', 0)
  redis.call('XADD', KEYS[6], '*', 'end', 'cancelled', 'error', ARGV[11], 'count', '0')
  local keep = tonumber(ARGV[12])
  if keep >= 0 then
    redis.call('PEXPIRE', KEYS[1], keep)
    redis.call('PEXPIRE', KEYS[6], keep)
  end
  event(KEYS[2], maxlen, ttl, created)
  event(KEYS[2], maxlen, ttl, {'type', 'stateChanged', 'job', id, 'from', 'queued', 'to', 'cancelled',
    'at', ARGV[1], 'origin', origin, 'error', ARGV[11]})
  return {'busy', holder}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[4], id, origin)
if ttl >= 0 then redis.call('PEXPIRE', KEYS[4], ttl) end
event(KEYS[2], maxlen, ttl, created)
if not keyed then return 1 end
redis.call('SET', KEYS[5], id, 'PX', ARGV[2])
if holder then return {'replaced', holder} end
return {'claimed'}
`;

/**
 * Moves a job to a new state, unless it is missing, terminal, or already there. A terminal move appends
 * the end entry to the token stream (with the job's token count when the writer knows it, so a reader
 * can tell it got every token), takes the job off the live hash, frees its key and starts the retention
 * TTL; written by another process than the job's holder (origin `<process>/remote`), it also marks the hash `tail_lost`.
 *
 * KEYS[1] job hash, KEYS[2] token stream, KEYS[3] shard events, KEYS[4] shard live hash
 * ARGV[1] target state, ARGV[2] error ('' for none), ARGV[3] time (ms), ARGV[4] retention ms (-1: keep),
 * ARGV[5] token count (-1: leave as is), ARGV[6] cancel request id ('' for none), ARGV[7] '1' when the
 * error is private (a producer's, not marked public) else '', then the shared tail (ARGV[8..11]).
 * Returns {'moved', previous state} | {'same'} | {'missing'} | {'ended', state, error, private}.
 */
export const TRANSITION = `${EVENT}
local id, origin, maxlen, ttl = ARGV[8], ARGV[9], ARGV[10], tonumber(ARGV[11])
local state, err, priv, key = unpack(redis.call('HMGET', KEYS[1], 'state', 'error', 'error_private', 'key'))
if not state then return {'missing'} end
if terminal(state) then return {'ended', state, err or '', priv or ''} end
if state == ARGV[1] then return {'same'} end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_at', ARGV[3])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[2]) end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'error_private', '1') end
if tonumber(ARGV[5]) >= 0 then redis.call('HSET', KEYS[1], 'token_count', ARGV[5]) end
if terminal(ARGV[1]) then
  local ending = {'end', ARGV[1], 'error', ARGV[2]}
  if tonumber(ARGV[5]) >= 0 then table.insert(ending, 'count'); table.insert(ending, ARGV[5]) end
  if ARGV[7] ~= '' then table.insert(ending, 'private'); table.insert(ending, '1') end
  redis.call('XADD', KEYS[2], '*', unpack(ending))
  redis.call('HDEL', KEYS[4], id)
  unclaim(KEYS[1], id, key)
  -- Ended by another process than its holder (which died): tokens it made but never stored may have
  -- reached its own readers, so the stored count is not the last id every reader saw.
  if string.sub(origin, -7) == '/remote' then redis.call('HSET', KEYS[1], 'tail_lost', '1') end
  local keep = tonumber(ARGV[4])
  if keep >= 0 then
    redis.call('PEXPIRE', KEYS[1], keep)
    redis.call('PEXPIRE', KEYS[2], keep)
  else
    redis.call('PERSIST', KEYS[1])
    redis.call('PERSIST', KEYS[2])
  end
end
local fields = {'type', 'stateChanged', 'job', id, 'from', state, 'to', ARGV[1], 'at', ARGV[3], 'origin', origin}
if ARGV[2] ~= '' then table.insert(fields, 'error'); table.insert(fields, ARGV[2]) end
if ARGV[6] ~= '' then table.insert(fields, 'req'); table.insert(fields, ARGV[6]) end
if ARGV[7] ~= '' then table.insert(fields, 'private'); table.insert(fields, '1') end
event(KEYS[3], maxlen, ttl, fields)
return {'moved', state}
`;

/**
 * The owner restores a job whose data Redis lost (a restart without persistence, FLUSHALL) as ended, so
 * every reader and every process sees one end instead of waiting for a job that no longer exists.
 * Does nothing when the job hash is back with a state (another write restored it first).
 *
 * KEYS[1] job hash, KEYS[2] token stream, KEYS[3] shard events, KEYS[4] shard live hash
 * ARGV[1] end state, ARGV[2] error, ARGV[3] time (ms), ARGV[4] retention ms (-1: keep), ARGV[5] token
 * count, ARGV[6] created at (ms), ARGV[7] the state it left, ARGV[8] the owner's replayLimit ('inf' for
 * all), ARGV[9] '1' when the error is private else '', ARGV[10] the principal ('' for none), then the
 * shared tail (ARGV[11..14]), then ARGV[15] the cancel request that ended it ('' for none: its event
 * names it, so the process that asked learns its cancel took effect), ARGV[16] the job's key ('' for
 * none: kept in the hash, and freed when its record still names the job).
 * Returns 1 when it wrote the job, 0 when the hash already had a state.
 */
export const RESTORE_ENDED = `${EVENT}
local id, origin, maxlen, ttl = ARGV[11], ARGV[12], ARGV[13], tonumber(ARGV[14])
if redis.call('HEXISTS', KEYS[1], 'state') == 1 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'error', ARGV[2], 'created_at', ARGV[6], 'updated_at', ARGV[3],
  'token_count', ARGV[5], 'owner', origin, 'limit', ARGV[8])
if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'principal', ARGV[10]) end
if ARGV[16] ~= '' then redis.call('HSET', KEYS[1], 'key', ARGV[16]) end
unclaim(KEYS[1], id, ARGV[16])
local ending = {'end', ARGV[1], 'error', ARGV[2], 'count', ARGV[5]}
if ARGV[9] ~= '' then
  redis.call('HSET', KEYS[1], 'error_private', '1')
  table.insert(ending, 'private'); table.insert(ending, '1')
end
redis.call('XADD', KEYS[2], '*', unpack(ending))
redis.call('HDEL', KEYS[4], id)
local keep = tonumber(ARGV[4])
if keep >= 0 then
  redis.call('PEXPIRE', KEYS[1], keep)
  redis.call('PEXPIRE', KEYS[2], keep)
end
local fields = {'type', 'stateChanged', 'job', id, 'from', ARGV[7], 'to', ARGV[1], 'at', ARGV[3],
  'origin', origin, 'error', ARGV[2]}
if ARGV[15] ~= '' then table.insert(fields, 'req'); table.insert(fields, ARGV[15]) end
if ARGV[9] ~= '' then table.insert(fields, 'private'); table.insert(fields, '1') end
event(KEYS[3], maxlen, ttl, fields)
return 1
`;

/**
 * Removes a job and publishes `removed` after whatever events the job had.
 *
 * KEYS[1] job hash, KEYS[2] token stream, KEYS[3] shard events, KEYS[4] shard job index, KEYS[5] shard live
 * ARGV[1] time (ms), then the shared tail (ARGV[2..5]), then for a keyed job ARGV[6] its key (freed when
 * its record still names the job).
 */
export const REMOVE = `${EVENT}
local id, origin, maxlen, ttl = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
unclaim(KEYS[1], id, ARGV[6])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[4], id)
redis.call('HDEL', KEYS[5], id)
event(KEYS[3], maxlen, ttl, {'type', 'removed', 'job', id, 'at', ARGV[1], 'origin', origin})
return 1
`;

/**
 * Appends a run of one job's consecutive tokens to its stream: one command for many tokens, so a burst
 * costs one round of client and protocol work instead of one per token. Entry ids are `0-<seq+1>` as
 * with a single XADD. A refused entry (the stream moved past it: a resend of a run already stored, or
 * another process ended the job; or the key holds another type) stops the run there; the entries
 * before it stay.
 *
 * KEYS[1] token stream
 * ARGV[1] seq of the first token, ARGV[2] field (`s` raw string, `t` JSON), ARGV[3] replayLimit to trim
 * to ('' for none), ARGV[4] live TTL ms set when the run starts the stream (-1: none), ARGV[5..] tokens.
 * Returns the number of tokens written, or {index of the refused token, Redis's error}.
 */
/**
 * Records when a job's first token came, once, on a job hash that exists (a hash Redis lost is not made
 * again by it, so no key without an expiry is left behind).
 *
 * KEYS[1] job hash; ARGV[1] time (ms).
 */
export const FIRST_TOKEN = `
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSETNX', KEYS[1], 'first_token_at', ARGV[1]) end
return 0
`;

export const TOKENS = `
local first = tonumber(ARGV[1])
for i = 5, #ARGV do
  local r = redis.pcall('XADD', KEYS[1], string.format('0-%d', first + i - 4), ARGV[2], ARGV[i])
  if type(r) == 'table' and r.err then return {i - 5, r.err} end
end
if ARGV[3] ~= '' then redis.call('XTRIM', KEYS[1], 'MAXLEN', ARGV[3]) end
if first == 0 and tonumber(ARGV[4]) >= 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return #ARGV - 4
`;

/**
 * Appends the token runs of many jobs of one shard (their streams share the shard's hash tag): one
 * command for a tick's tokens of a shard, however many jobs they belong to, so a tick of a thousand jobs
 * each with a token costs a handful of commands instead of a thousand. Each run is written as TOKENS
 * writes it; a refused entry stops its run there, and the job's later runs in the call are refused
 * too (no entry is stored past a gap), while other jobs' runs go on. The client sends each run's first
 * entry id, so a lone token (the common case: many jobs, a token each per tick) costs Redis one XADD
 * and no arithmetic.
 *
 * KEYS[1..n] token streams, one per run (a job may have several runs, in order)
 * ARGV[1] replayLimit to trim to ('' for none), ARGV[2] live TTL ms set when a run starts its stream
 * (-1: none), ARGV[3] the field when every run is one token with that field (the common case, sent
 * with two arguments a run), else ''; then per run: its first entry id (`0-<seq+1>`), and the token
 * when ARGV[3] is set, else the field (`s` raw string, `t` JSON), the token count and the tokens.
 * Returns the positions (from 0, in KEYS order) of the runs Redis refused.
 */
export const TOKEN_RUNS = `
local limit, ttl, lone = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local refused, stopped = {}, {}
local function done(k, key, id, ok)
  if not ok then
    refused[#refused + 1] = k - 1
    stopped[key] = true
  elseif id == '0-1' and ttl >= 0 then
    redis.call('PEXPIRE', key, ttl)
  end
end
if lone ~= '' then
  for k = 1, #KEYS do
    local key, id = KEYS[k], ARGV[2 * k + 2]
    local ok = not stopped[key]
    if ok then
      local r
      if limit == '' then r = redis.pcall('XADD', key, id, lone, ARGV[2 * k + 3])
      else r = redis.pcall('XADD', key, 'MAXLEN', limit, id, lone, ARGV[2 * k + 3]) end
      ok = not (type(r) == 'table' and r.err)
    end
    done(k, key, id, ok)
  end
  return refused
end
local a = 4
for k = 1, #KEYS do
  local key, id, field, n = KEYS[k], ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  a = a + 3
  local ok = not stopped[key]
  if ok then
    local base = tonumber(string.sub(id, 3))
    for i = 0, n - 1 do
      local r = redis.pcall('XADD', key, string.format('0-%d', base + i), field, ARGV[a + i])
      if type(r) == 'table' and r.err then ok = false break end
    end
    if ok and limit ~= '' then redis.call('XTRIM', key, 'MAXLEN', limit) end
  end
  a = a + n
  done(k, key, id, ok)
end
return refused
`;

/**
 * What a refused token run needs to know of its stream, without reading the entries back: the ids of the
 * stream's first and last entries (nil when it is empty or gone) and how many entries lie in the run's
 * range.
 *
 * KEYS[1] token stream; ARGV[1] the run's first entry id, ARGV[2] its last.
 * Returns {first id or nil, entries in the range, last id or nil}.
 */
export const RUN_CHECK = `
local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local tail = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local n = #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2])
return {head[1] and head[1][1] or false, n, tail[1] and tail[1][1] or false}
`;
