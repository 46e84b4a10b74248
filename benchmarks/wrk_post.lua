-- wrk script for the serving benchmark: POSTs the benchmark's strips round-robin (one JSON body
-- per line of a file written by benchmarks/wrk_check.py), with an optional Authorization header,
-- and prints the run's figures as one JSON line at the end.
--   wrk -t1 -c16 -d15s -s benchmarks/wrk_post.lua http://127.0.0.1:PORT -- BODIES PATH [AUTH]
local requests = {}
local index = 0

function init(args)
  local bodies, path, auth = args[1], args[2], args[3]
  local headers = { ["Content-Type"] = "application/json" }
  if auth ~= nil and auth ~= "" then
    headers["Authorization"] = auth
  end
  for line in io.lines(bodies) do
    requests[#requests + 1] = wrk.format("POST", path, headers, line)
  end
  index = math.random(#requests) - 1
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
