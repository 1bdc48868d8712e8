package redis

import goredis "github.com/redis/go-redis/v9"

// Every change to shared state is one Lua script, so that Redis runs it
// whole and alone: a batch gets its ids, its history and its place in the
// feed at once, and no node ever sees half of it. Scripts declare the flags
// of Redis 7 function-style scripts (the #! line): a script that may write is
// refused up front when Redis is out of memory, instead of failing half-way
// through, which is what keeps an append all-or-nothing (a script is not
// rolled back when a command in it fails). Read-only scripts say no-writes,
// so they also run while Redis refuses writes.
//
// Every script but ensureEpoch starts with the epoch check: KEYS[1] is the
// meta hash and ARGV[1] the epoch the node named its keys after. When Redis
// holds another epoch, or none, the script answers {'epoch', current} and
// changes nothing; the node adopts the epoch and runs it again.
//
// Stream entries keep a fixed field order, time first, so that scripts can
// read an entry's time as fields[2] without searching:
//
//	channel stream: t <unix ms> e <event> y <type> d <data>
//	feed:           k m c <channel> t <unix ms> e <event> y <type> d <data>   (a message)
//	                k d c <channel> t <unix ms>                              (a deleted notice)
//
// Lua numbers are doubles: seqs and times are exact up to 2^53, which a
// counter of ids and a clock in milliseconds do not reach. Numbers are
// turned into ids with string.format('%d'), never tostring, which would
// print large ones in exponent form.

const (
	writes  = "#!lua\n"
	noWrite = "#!lua flags=no-writes\n"
)

const epochCheck = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch ~= ARGV[1] then
  return {'epoch', epoch or ''}
end
`

const helpers = `
local function seqOf(id)
  return tonumber(string.match(id, '^(%d+)'))
end

-- droppable counts the entries at the front of a channel stream that its
-- retention no longer allows (beyond maxlen, or older than cutoff), and
-- answers the seq of the newest of them (0 when none). Reads use it to
-- filter, appends to trim, so both agree on what a channel retains.
-- The first read fetches only what the count must drop plus one entry to
-- look at its age: turning entries into Lua tables is most of a script's
-- cost, and usually one or two are all there is to see.
local function droppable(key, maxlen, cutoff)
  local len = redis.call('XLEN', key)
  local n, newest, start = 0, 0, '-'
  local want = math.min(math.max(len - maxlen, 0) + 1, 100)
  while n < len do
    local batch = redis.call('XRANGE', key, start, '+', 'COUNT', want)
    want = 100
    if #batch == 0 then
      break
    end
    for _, e in ipairs(batch) do
      if len - n <= maxlen and tonumber(e[2][2]) >= cutoff then
        return n, newest
      end
      n = n + 1
      newest = seqOf(e[1])
    end
    start = '(' .. batch[#batch][1]
  end
  return n, newest
end

-- lastGenerated is the id of the newest entry ever added to a stream, which
-- survives the entry being trimmed.
local function lastGenerated(key)
  local info = redis.call('XINFO', 'STREAM', key)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      return info[i + 1]
    end
  end
  return '0-0'
end
`

const forgetHelper = `
-- forget drops a channel's history whole. forgotten keeps the newest seq of
-- every channel dropped so: a cursor below it cannot be proven complete on a
-- channel the store no longer knows, or on one created afresh.
local function forget(meta, key, floors, expiry, channel)
  local last = seqOf(lastGenerated(key))
  local forgotten = tonumber(redis.call('HGET', meta, 'forgotten') or '0')
  if last > forgotten then
    redis.call('HSET', meta, 'forgotten', string.format('%d', last))
  end
  redis.call('DEL', key)
  redis.call('HDEL', floors, channel)
  redis.call('ZREM', expiry, channel)
  return last
end
`

// ensureEpochScript makes an epoch when Redis has none (first start, or the
// data is gone) and answers the one in force. HSETNX lets the first of
// several nodes starting at once win.
//
// KEYS: meta. ARGV: a fresh epoch.
var ensureEpochScript = goredis.NewScript(writes + `
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1])
return redis.call('HGET', KEYS[1], 'epoch')
`)

// rotateEpochScript replaces an epoch whose counter went back: Redis came
// back from an older snapshot (a crash with RDB persistence), so the ids
// after it would be handed out a second time, to other messages. The old
// epoch's keys are left behind; the new one starts from nothing. Only the
// first node to notice rotates; the others find the epoch changed.
//
// KEYS: meta. ARGV: the rolled-back epoch, the seq a reader had already
// seen in it, a fresh epoch.
var rotateEpochScript = goredis.NewScript(writes + `
local m = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
if m[1] == ARGV[1] and tonumber(m[2] or '0') < tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'epoch', ARGV[3])
end
return redis.call('HGET', KEYS[1], 'epoch')
`)

// appendScript stores a batch: ids from one INCRBY, each message added to
// its channel's stream and to the feed, channels trimmed to their
// retention, and the idempotency key set, all in one step.
//
// KEYS: meta, feed, floors, expiry, idempotency key (meta when none), then
// the stream of each distinct channel of the batch.
// ARGV: epoch, now (ms), idempotency expiry (ms, 0 when no key), its TTL
// (ms), feed length, channel count; per channel: name, max count, cutoff
// (ms: older is dropped), expiry (ms: when it has aged out); per message:
// channel number (1-based), event, type, data.
// Answers {'ok', first seq} or {'replay', stored answer}.
var appendScript = goredis.NewScript(writes + epochCheck + helpers + `
local now = ARGV[2]
local keyed = ARGV[3] ~= '0'
if keyed then
  local answer = redis.call('GET', KEYS[5])
  if answer and tonumber(string.match(answer, '^%d+')) > tonumber(now) then
    return {'replay', answer}
  end
end

local nch = tonumber(ARGV[6])
local mbase = 7 + 4 * nch
local nmsg = (#ARGV - mbase + 1) / 4
local first = redis.call('HINCRBY', KEYS[1], 'seq', nmsg) - nmsg + 1

-- A channel made afresh starts at the forgotten floor, as in the memory
-- store: a cursor older than a deleted channel's history cannot be proven
-- complete on its namesake.
local forgotten = redis.call('HGET', KEYS[1], 'forgotten')
if forgotten then
  for c = 1, nch do
    if redis.call('EXISTS', KEYS[5 + c]) == 0 then
      redis.call('HSET', KEYS[3], ARGV[3 + 4 * c], forgotten)
    end
  end
end

local names = {}
for i = 0, nmsg - 1 do
  local j = mbase + 4 * i
  local c = tonumber(ARGV[j])
  local channel = ARGV[3 + 4 * c]
  local id = string.format('%d-0', first + i)
  redis.call('XADD', KEYS[5 + c], id, 't', now, 'e', ARGV[j + 1], 'y', ARGV[j + 2], 'd', ARGV[j + 3])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], id,
    'k', 'm', 'c', channel, 't', now, 'e', ARGV[j + 1], 'y', ARGV[j + 2], 'd', ARGV[j + 3])
  names[i + 1] = channel
end

for c = 1, nch do
  local key, channel = KEYS[5 + c], ARGV[3 + 4 * c]
  local n, newest = droppable(key, tonumber(ARGV[4 + 4 * c]), tonumber(ARGV[5 + 4 * c]))
  if n > 0 then
    redis.call('XTRIM', key, 'MINID', string.format('%d', newest + 1))
    redis.call('HSET', KEYS[3], channel, string.format('%d', newest))
  end
  redis.call('ZADD', KEYS[4], ARGV[6 + 4 * c], channel)
end

if keyed then
  local answer = ARGV[3] .. ' ' .. string.format('%d', first) .. ' ' .. now .. '\n' .. table.concat(names, '\n')
  redis.call('SET', KEYS[5], answer, 'PX', ARGV[4])
end
return {'ok', first}
`)

// sinceScript reads what a cursor missed on one channel, and whether that
// is provably all of it: same epoch, not ahead of the counter, not below
// what the channel lost.
//
// KEYS: meta, channel stream, floors.
// ARGV: epoch, channel, max count, cutoff (ms), earliest (1 or 0), cursor
// epoch, cursor seq.
// Answers {'ok', complete (1 or 0), entries}.
var sinceScript = goredis.NewScript(noWrite + epochCheck + helpers + `
local head = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local floor, newest = 0, 0
if redis.call('EXISTS', KEYS[2]) == 1 then
  local _
  _, newest = droppable(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
  floor = math.max(tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0'), newest)
else
  floor = tonumber(redis.call('HGET', KEYS[1], 'forgotten') or '0')
end

local complete, from = 1, newest
if ARGV[5] ~= '1' then
  local seq = tonumber(ARGV[7])
  if ARGV[6] ~= epoch or seq > head or seq < floor then
    complete = 0
  else
    from = math.max(from, seq)
  end
end
return {'ok', complete, redis.call('XRANGE', KEYS[2], string.format('%d', from + 1), '+')}
`)

// infoScript describes a channel.
//
// KEYS: meta, channel stream. ARGV: epoch, max count, cutoff (ms).
// Answers {'ok', found (1 or 0), messages retained, last seq}.
var infoScript = goredis.NewScript(noWrite + epochCheck + helpers + `
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'ok', 0, 0, 0}
end
local n = droppable(KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]))
return {'ok', 1, redis.call('XLEN', KEYS[2]) - n, seqOf(lastGenerated(KEYS[2]))}
`)

// deleteScript drops a channel's history and puts a deleted notice in the
// feed, so that its subscribers end on every node. The notice takes the id
// {seq}-{n}: after the newest message, without using up a seq.
//
// KEYS: meta, channel stream, floors, expiry, feed.
// ARGV: epoch, channel, max count, cutoff (ms), now (ms), feed length.
// Answers {'ok', found (1 or 0), messages retained, last seq}.
var deleteScript = goredis.NewScript(writes + epochCheck + helpers + forgetHelper + `
local found, messages, last = 0, 0, 0
if redis.call('EXISTS', KEYS[2]) == 1 then
  found = 1
  local n = droppable(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
  messages = redis.call('XLEN', KEYS[2]) - n
  last = forget(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2])
end
local seq = redis.call('HGET', KEYS[1], 'seq') or '0'
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], seq .. '-*', 'k', 'd', 'c', ARGV[2], 't', ARGV[5])
return {'ok', found, messages, last}
`)

// sweepScript forgets a channel whose history has aged out whole, as the
// memory store's sweep does, so that idle channels do not pile up in Redis.
// A channel whose retention grew meanwhile is given a later expiry instead.
//
// KEYS: meta, channel stream, floors, expiry.
// ARGV: epoch, channel, max count, cutoff (ms), now (ms), age (ms).
// Answers {'ok', collected (1 or 0)}.
var sweepScript = goredis.NewScript(writes + epochCheck + helpers + forgetHelper + `
local due = redis.call('ZSCORE', KEYS[4], ARGV[2])
if not due or tonumber(due) > tonumber(ARGV[5]) then
  return {'ok', 0}
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[4], ARGV[2])
  return {'ok', 0}
end
local n = droppable(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
if n < redis.call('XLEN', KEYS[2]) then
  local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  redis.call('ZADD', KEYS[4], tonumber(newest[1][2][2]) + tonumber(ARGV[6]), ARGV[2])
  return {'ok', 0}
end
forget(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2])
return {'ok', 1}
`)

// positionScript is where a feed reader starts: the counter and the id of
// the feed's newest entry, read at one instant, so that the next message
// must carry seq+1 and anything else is a gap.
//
// KEYS: meta, feed. ARGV: epoch.
// Answers {'ok', seq, last feed id}.
var positionScript = goredis.NewScript(noWrite + epochCheck + helpers + `
local last = '0-0'
if redis.call('EXISTS', KEYS[2]) == 1 then
  last = lastGenerated(KEYS[2])
end
return {'ok', tonumber(redis.call('HGET', KEYS[1], 'seq') or '0'), last}
`)
