-- wrk script: POST order bodies to the URL's path, e.g.
--   wrk -s bench/post.lua http://127.0.0.1:PORT/api/orders/
--   wrk -s bench/post.lua http://127.0.0.1:PORT/echo        (the ceiling)
-- Bodies look like the README's example and vary per request (user_id,
-- 1-3 item_ids, total_amount with two decimals); a pool of BENCH_POOL
-- (default 1024) distinct requests is built in init() and cycled, so wrk
-- spends no Lua time per request.
-- Environment: BENCH_QUOTA=N stop after about N responses in all (with
-- BENCH_THREADS = wrk's -t); unset, wrk runs for its -d duration.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local has_quota = dofile(dir .. "report.lua")

local pool = {}
local n = 0
local i = 0

function init(args)
   bench_init()
   local size = tonumber(os.getenv("BENCH_POOL") or "1024")
   local base = math.random(0, 1000000)
   for k = 1, size do
      local v = base + k
      local items
      local nitems = v % 3 + 1
      if nitems == 1 then
         items = string.format("[%d]", 100 + v % 900)
      elseif nitems == 2 then
         items = string.format("[%d, %d]", 100 + v % 900, 101 + v % 37)
      else
         items = string.format("[%d, %d, %d]", 100 + v % 900, 101 + v % 37,
                               5000 + v % 11)
      end
      local body = string.format(
         '{"user_id": %d, "item_ids": %s, "total_amount": %d.%02d}',
         1 + v % 997, items, 1 + v % 5000, v % 100)
      pool[k] = wrk.format("POST", nil,
                           {["Content-Type"] = "application/json"}, body)
   end
   n = size
   if has_quota then
      response = bench_response
   else
      response = nil
   end
end

function request()
   i = i + 1
   if i > n then
      i = 1
   end
   return pool[i]
end
