-- wrk script: GET the URL's path, or random existing orders.
--   BENCH_MAX_ID=N BENCH_KIND=status wrk -s bench/get.lua http://HOST:PORT/
--       GET /api/orders/ORD<k>/status/ for k uniformly random in 1..N
--   BENCH_MAX_ID=N BENCH_KIND=detail ...   GET /api/orders/ORD<k>/
--   no BENCH_MAX_ID: GET the URL's own path every time (the ceiling's
--       /hello, /api/orders/metrics/), a request wrk formats once.
-- Random requests cost one Lua string concatenation each in wrk.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local max_id = tonumber(os.getenv("BENCH_MAX_ID") or "")
local kind = os.getenv("BENCH_KIND") or "status"
local pre, post

function init(args)
   bench_init()
   response = nil
   if max_id then
      local suffix = (kind == "detail") and "/" or "/status/"
      local tmpl = wrk.format("GET", "/api/orders/ORD@ID@" .. suffix)
      local a, b = tmpl:find("@ID@", 1, true)
      pre = tmpl:sub(1, a - 1)
      post = tmpl:sub(b + 1)
   end
end

if max_id then
   function request()
      return pre .. math.random(max_id) .. post
   end
end
