/**
 * Lua scripts of the Durable Streams kept in Redis (see streams.ts). A stream is a job no process holds:
 * its job hash carries the stream's metadata in `ds_` fields, its token stream the chunks. A stream's
 * name record, job hash, token stream, append starts and its shard's events and index share one hash
 * tag (the job id is drawn in the name's shard), so each script runs atomically on Redis Cluster too.
 *
 * Keys of every script: KEYS[1] name record, KEYS[2] job hash, KEYS[3] token stream, KEYS[4] append
 * starts (a list), KEYS[5] shard events, KEYS[6] shard job index.
 * Shared ARGV head: ARGV[1] job id, ARGV[2] origin, ARGV[3] events MAXLEN, ARGV[4] shard TTL ms (-1:
 * none), ARGV[5] now (ms), ARGV[6] keep ms (how long the keys live untouched: the time to the stream's
 * deadline plus the retention; -1: kept), ARGV[7] retention ms (-1: kept).
 */

const HEAD = `
local id, origin, maxlen, shardTtl, now, keep, retention = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]),
  ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local function event(fields)
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', maxlen, '*', unpack(fields))
  if shardTtl >= 0 then redis.call('PEXPIRE', KEYS[5], shardTtl); redis.call('PEXPIRE', KEYS[6], shardTtl) end
end
local function terminal(s) return s == 'completed' or s == 'failed' or s == 'cancelled' end
-- Sets the keys' expiry; a stream forks read from (ds_forks > 0) is never shortened, only extended.
local function expireAll(ms)
  local held = tonumber(redis.call('HGET', KEYS[2], 'ds_forks') or '0') > 0
  for i = 1, 4 do
    if ms < 0 then redis.call('PERSIST', KEYS[i])
    elseif not held then redis.call('PEXPIRE', KEYS[i], ms)
    else
      -- A key without an expiry here is one this step made (an end entry, a first chunk).
      local left = redis.call('PTTL', KEYS[i])
      if left == -1 or (left >= 0 and left < ms) then redis.call('PEXPIRE', KEYS[i], ms) end
    end
  end
end
-- Whether a sorts after b byte by byte (Lua's own < follows the server's locale).
local function after(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end
local function complete(count)
  local from = redis.call('HGET', KEYS[2], 'state')
  redis.call('HSET', KEYS[2], 'state', 'completed', 'updated_at', now, 'token_count', count, 'ds_closed', '1')
  redis.call('XADD', KEYS[3], '*', 'end', 'completed', 'error', '', 'count', count)
  event({'type', 'stateChanged', 'job', id, 'from', from, 'to', 'completed', 'at', now, 'origin', origin})
end
`;

/**
 * Creates a stream unless its name is taken by a job that still exists.
 * ARGV[8] principal ('' none), ARGV[9] '1' when created closed, ARGV[10] seq of its first own chunk,
 * ARGV[11] M, then M metadata field/value pairs, then the chunks as field/value pairs.
 * Returns {'created'} or {'exists', job id}.
 */
export const STREAM_CREATE = `${HEAD}
local held = redis.call('GET', KEYS[1])
if held then
  local other = string.sub(KEYS[2], 1, #KEYS[2] - #id) .. held
  if redis.call('EXISTS', other) == 1 then return {'exists', held} end
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'exists', id} end
redis.call('SET', KEYS[1], id)
local count = tonumber(ARGV[10])
redis.call('HSET', KEYS[2], 'state', 'running', 'created_at', now, 'updated_at', now, 'owner', '',
  'limit', 'inf', 'ds_touched', now, 'token_count', count)
if ARGV[8] ~= '' then redis.call('HSET', KEYS[2], 'principal', ARGV[8]) end
local m = tonumber(ARGV[11])
local at = 12
for _ = 1, m do redis.call('HSET', KEYS[2], ARGV[at], ARGV[at + 1]); at = at + 2 end
while at < #ARGV do
  redis.call('XADD', KEYS[3], '0-' .. (count + 1), ARGV[at], ARGV[at + 1])
  count = count + 1
  at = at + 2
end
if redis.call('HGET', KEYS[2], 'ds_json') == '1' and count > tonumber(ARGV[10]) then
  redis.call('RPUSH', KEYS[4], ARGV[10])
end
redis.call('HSET', KEYS[2], 'ds_count', count, 'token_count', count)
redis.call('ZADD', KEYS[6], now, id)
local created = {'type', 'created', 'job', id, 'at', now, 'origin', origin}
if ARGV[8] ~= '' then table.insert(created, 'principal'); table.insert(created, ARGV[8]) end
event(created)
event({'type', 'stateChanged', 'job', id, 'from', 'queued', 'to', 'running', 'at', now, 'origin', origin})
if ARGV[9] == '1' then
  complete(count)
  expireAll(keep)
else
  expireAll(keep)
end
return {'created'}
`;

/**
 * Appends chunks (and/or closes), with the checks of Protocol 5.2 in the same step: closed, the byte
 * bound, the producer's epoch and seq, the writer's Stream-Seq.
 * ARGV[8] body bytes, ARGV[9] max bytes, ARGV[10] '1' for JSON, ARGV[11] producer id ('' none),
 * ARGV[12] epoch, ARGV[13] seq, ARGV[14] Stream-Seq ('' none), ARGV[15] '1' to close, then the chunks
 * as field/value pairs.
 */
export const STREAM_APPEND = `${HEAD}
local st, deleted, cnt, bytes, closedBy, wseq = unpack(redis.call('HMGET', KEYS[2], 'state', 'ds_deleted',
  'ds_count', 'ds_bytes', 'ds_closed_by', 'ds_wseq'))
if not st or not cnt then return {'missing'} end
if deleted == '1' then return {'gone'} end
cnt = tonumber(cnt)
local pid = ARGV[11]
local tuple = ''
if pid ~= '' then tuple = pid .. '/' .. ARGV[12] .. '/' .. ARGV[13] end
local n = (#ARGV - 15) / 2
if terminal(st) then
  if pid ~= '' and closedBy == tuple then return {'closed', tostring(cnt), '1'} end
  return {'closed', tostring(cnt), ''}
end
if tonumber(bytes) + tonumber(ARGV[8]) > tonumber(ARGV[9]) then return {'full'} end
local pstate
if pid ~= '' then
  local cur = redis.call('HGET', KEYS[2], 'ds_p:' .. pid)
  local epoch, seq = tonumber(ARGV[12]), tonumber(ARGV[13])
  if not cur then
    if seq ~= 0 then return {'gap', '-1', ARGV[13]} end
  else
    local ce, cs = string.match(cur, '^(%d+):(%d+)$')
    local e, s = tonumber(ce), tonumber(cs)
    if epoch < e then return {'stale', ce} end
    if epoch > e then
      if seq ~= 0 then return {'epoch_seq'} end
    elseif seq <= s then return {'dup', cs}
    elseif seq ~= s + 1 then return {'gap', cs, ARGV[13]} end
  end
  pstate = ARGV[12] .. ':' .. ARGV[13]
end
if ARGV[14] ~= '' and n > 0 and wseq and not after(ARGV[14], wseq) then return {'seq_conflict', wseq} end
if ARGV[10] == '1' and n > 0 then redis.call('RPUSH', KEYS[4], cnt) end
for i = 0, n - 1 do
  redis.call('XADD', KEYS[3], '0-' .. (cnt + i + 1), ARGV[16 + 2 * i], ARGV[17 + 2 * i])
end
cnt = cnt + n
redis.call('HSET', KEYS[2], 'ds_count', cnt, 'token_count', cnt, 'ds_bytes', tonumber(bytes) + tonumber(ARGV[8]),
  'ds_touched', now, 'updated_at', now)
if pstate then redis.call('HSET', KEYS[2], 'ds_p:' .. pid, pstate) end
if ARGV[14] ~= '' and n > 0 then redis.call('HSET', KEYS[2], 'ds_wseq', ARGV[14]) end
if ARGV[15] == '1' then
  if pid ~= '' then redis.call('HSET', KEYS[2], 'ds_closed_by', tuple) end
  complete(cnt)
  expireAll(keep)
else
  expireAll(keep)
end
return {'appended', tostring(cnt)}
`;

/** Marks a read or an append: `ds_touched` now, and the keys live `keep` more (never shorter). */
export const STREAM_TOUCH = `${HEAD}
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'ds_touched', now)
if keep >= 0 then for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], keep, 'GT') end end
return 1
`;

/**
 * Ends a stream: ARGV[8] 'close' (completed, data readable for the retention), 'remove' (deleted: only
 * hidden while forks of it are left), or 'unref' (one fork fewer: ARGV[9] the change; a hidden source
 * with no fork left goes). ARGV[10], for a close or remove by deadline: the `ds_touched` its deadline was
 * judged on ('' for none): a stream touched since is left alone ('touched').
 * Returns 'removed', 'soft', 'closed', 'ok', 'gone', 'touched' or 'missing'.
 */
export const STREAM_END = `${HEAD}
local st, deleted, forks, cnt = unpack(redis.call('HMGET', KEYS[2], 'state', 'ds_deleted', 'ds_forks', 'ds_count'))
if not st or not cnt then return 'missing' end
local mode = ARGV[8]
forks = tonumber(forks or '0')
local function drop()
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
  if redis.call('GET', KEYS[1]) == id then redis.call('DEL', KEYS[1]) end
  redis.call('ZREM', KEYS[6], id)
  event({'type', 'removed', 'job', id, 'at', now, 'origin', origin})
end
if mode == 'unref' then
  local delta = tonumber(ARGV[9])
  if delta > 0 and deleted == '1' then return 'gone' end
  forks = redis.call('HINCRBY', KEYS[2], 'ds_forks', delta)
  if forks <= 0 and deleted == '1' then drop(); return 'removed' end
  if delta > 0 and keep >= 0 then for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], keep, 'GT') end end
  return 'ok'
end
if ARGV[10] ~= '' and redis.call('HGET', KEYS[2], 'ds_touched') ~= ARGV[10] then return 'touched' end
if not terminal(st) then complete(cnt) end
if mode == 'close' then
  expireAll(keep)
  return 'closed'
end
if forks > 0 then
  redis.call('HSET', KEYS[2], 'ds_deleted', '1')
  -- The end entry may have made the token stream: it lives as long as the hash.
  local ttl = redis.call('PTTL', KEYS[2])
  local left = redis.call('PTTL', KEYS[3])
  if ttl > 0 and (left == -1 or (left >= 0 and left < ttl)) then redis.call('PEXPIRE', KEYS[3], ttl) end
  return 'soft'
end
drop()
return 'removed'
`;
