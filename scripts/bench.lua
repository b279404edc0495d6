-- wrk script of scripts/bench: replays pre-signed requests, each exactly once.
--
-- wrk -t T -c C -d D -s bench.lua URL -- PREFIX RATE THREADS
--
-- PREFIX: thread n reads its own slice PREFIX.n, a sequence of records
--   "<length>\n<raw HTTP/1.1 request>" written by bench.py; "-" sends the URL's GET
--   (static phases: /health, the load generator's ceiling).
-- RATE: 0 for closed loop (each connection sends as soon as it has its answer);
--   otherwise requests per second over all threads, paced per thread by delay().
--
-- When a thread has sent its slice it stops, and signals wrk's main thread (SIGINT)
-- so that the run ends there instead of sleeping out its duration; wrk then reports
-- the requests completed over the time actually run. A request is never sent twice
-- (nonces are single-use): an exhausted thread answers wrk's last calls with a
-- harmless GET /health that is written but never read or counted.
--
-- Pacing and coordinated omission: wrk is closed loop per connection. With RATE set,
-- the thread keeps a schedule of slots 1/(RATE/THREADS) apart and delay() holds
-- each request until its slot. A request can only leave when a connection is free,
-- so when the server falls behind, requests leave after their slot: request()
-- records that lag (actual send - slot) for every request. wrk measures latency from
-- the actual send and then applies its own correction (stats_correct: for a latency
-- L > 2 x the per-connection interval it adds samples L - i, L - 2i, ...). The lag
-- percentiles printed beside tell whether the schedule held: lag near 0 means
-- nothing was omitted.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
  int kill(int pid, int sig);
  int getpid(void);
]]
local CLOCK_MONOTONIC, SIGINT = 1, 2
local timespec = ffi.new("bench_timespec[1]")
local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec[0].tv_sec) * 1000000 + tonumber(timespec[0].tv_nsec) / 1000
end

-- setup/done run in wrk's main Lua state; the rest in each thread's own.
local threads, created = {}, 0
function setup(thread)
  thread:set("thread_index", created)
  created = created + 1
  table.insert(threads, thread)
end

requests, sent, count = {}, 0, 0
statuses, codes, lags = {}, {}, {}
exhausted = false
local interval_us, next_slot, slots, head, tail, fallback, static = 0, nil, {}, 1, 0, nil, false

local function load(path)
  local file = assert(io.open(path, "rb"))
  local data = file:read("*a")
  file:close()
  local position, size = 1, #data
  while position <= size do
    local newline = data:find("\n", position, true)
    local length = tonumber(data:sub(position, newline - 1))
    count = count + 1
    requests[count] = data:sub(newline + 1, newline + length)
    position = newline + 1 + length
  end
end

-- Installed as delay() by init() in paced runs only: wrk calls delay() before every
-- request when it is defined, and checks that once, after init().
local function pace()
  local now = now_us()
  if next_slot == nil then next_slot = now end
  local slot = next_slot
  next_slot = next_slot + interval_us
  tail = tail + 1
  slots[tail] = slot
  local wait = slot - now
  if wait <= 0 then return 0 end
  return math.floor(wait / 1000)
end

function init(args)
  local prefix, rate, nthreads = args[1], tonumber(args[2] or "0"), tonumber(args[3] or "1")
  fallback = wrk.format("GET", "/health")
  if prefix == "-" then
    static = true
    requests[1] = wrk.format()
  else
    load(prefix .. "." .. thread_index)
  end
  if rate > 0 then
    interval_us = 1000000 * nthreads / rate
    delay = pace
  end
end

function request()
  if static then
    sent = sent + 1
    return requests[1]
  end
  if sent >= count then
    if not exhausted then
      exhausted = true
      wrk.thread:stop()
      ffi.C.kill(ffi.C.getpid(), SIGINT)
    end
    return fallback
  end
  sent = sent + 1
  if interval_us > 0 and head <= tail then
    local lag_ms = math.floor((now_us() - slots[head]) / 1000)
    slots[head] = nil
    head = head + 1
    if lag_ms < 0 then lag_ms = 0 end
    lags[lag_ms] = (lags[lag_ms] or 0) + 1
  end
  return requests[sent]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 400 then
    local code = body:match('"code"%s*:%s*"([^"]+)"') or "-"
    local key = status .. " " .. code
    codes[key] = (codes[key] or 0) + 1
  end
end

local function json_table(t)
  local parts = {}
  for key, value in pairs(t) do
    parts[#parts + 1] = string.format('"%s":%d', tostring(key), value)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function merge(into, from)
  for key, value in pairs(from or {}) do
    into[key] = (into[key] or 0) + value
  end
end

function done(summary, latency, _)
  local all_statuses, all_codes, all_lags, total_sent, available, ran_out = {}, {}, {}, 0, 0, false
  for _, thread in ipairs(threads) do
    merge(all_statuses, thread:get("statuses"))
    merge(all_codes, thread:get("codes"))
    merge(all_lags, thread:get("lags"))
    total_sent = total_sent + (thread:get("sent") or 0)
    available = available + (thread:get("count") or 0)
    ran_out = ran_out or thread:get("exhausted")
  end
  local lag_keys, lag_total = {}, 0
  for lag, n in pairs(all_lags) do
    lag_keys[#lag_keys + 1] = lag
    lag_total = lag_total + n
  end
  table.sort(lag_keys)
  local function lag_percentile(p)
    local seen, want = 0, lag_total * p / 100
    for _, lag in ipairs(lag_keys) do
      seen = seen + all_lags[lag]
      if seen >= want then return lag end
    end
    return 0
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH-RESULT {"duration_us":%d,"requests":%d,"sent":%d,"available":%d,"exhausted":%s,' ..
    '"latency_us":{"p50":%d,"p95":%d,"p99":%d,"max":%d,"mean":%.1f},' ..
    '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
    '"statuses":%s,"codes":%s,"lag_ms":{"count":%d,"p50":%d,"p99":%d,"max":%d}}\n',
    summary.duration, summary.requests, total_sent, available, tostring(ran_out),
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean,
    errors.connect, errors.read, errors.write, errors.timeout,
    json_table(all_statuses), json_table(all_codes),
    lag_total, lag_percentile(50), lag_percentile(99), lag_keys[#lag_keys] or 0))
end
