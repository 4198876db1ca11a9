-- wrk script: send absolute-form requests, so wrk (which has no proxy
-- support) talks to a forward proxy. The URL given to wrk is the proxy's.
--   BENCH_TARGET  host:port of the origin server (required)
--   BENCH_PATH    path on it (default /small)
--   BENCH_CLOSE   "1": send Connection: close (one request per connection)
--   BENCH_ORIGIN  "1": origin-form request line (a direct, proxy-less baseline)
local target = os.getenv("BENCH_TARGET")
local path = os.getenv("BENCH_PATH") or "/small"
if os.getenv("BENCH_ORIGIN") == "1" then
	wrk.path = path
else
	wrk.path = "http://" .. target .. path
end
wrk.method = "GET"
wrk.headers["Host"] = target
if os.getenv("BENCH_CLOSE") == "1" then
	wrk.headers["Connection"] = "close"
end
