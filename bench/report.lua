-- Shared by the bench/ wrk scripts (loaded with dofile from post.lua and
-- get.lua): numbers each thread, stops a thread after its share of
-- BENCH_QUOTA responses when a quota is set, and prints one machine-readable
-- line that bench/report.py parses (parse_wrk):
--   BENCH_RESULT requests=N duration_us=N p50_us=N p99_us=N status=N
--                connect=N read=N write=N timeout=N
-- (status = responses with a code > 399, as wrk counts them).

local threads = {}
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
local quota = tonumber(os.getenv("BENCH_QUOTA") or "")

function setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
end

-- Per-thread quota: every thread answers for ceil(quota / threads)
-- responses, then stops.  Requests in flight when it stops may still reach
-- the server, so the server can see up to one extra request per connection.
local seen = 0
local share = nil
if quota then
   share = math.ceil(quota / nthreads)
end

function bench_init()
   math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
end

function bench_response(status, headers, body)
   seen = seen + 1
   if seen >= share then
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d " ..
      "status=%d connect=%d read=%d write=%d timeout=%d\n",
      summary.requests, summary.duration,
      latency:percentile(50.0), latency:percentile(99.0),
      e.status, e.connect, e.read, e.write, e.timeout))
end

-- Tells the caller whether a quota is set.
return quota ~= nil
