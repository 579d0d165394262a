-- wrk script for bench/upgrade: counts every response that is not 200 (wrk's own "errors.status"
-- counts only >= 400) and prints one machine-readable line with wrk's error classes and the
-- latency percentiles in microseconds.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non200")
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d non200=%d connect=%d read=%d write=%d timeout=%d p50=%d p99=%d p999=%d max=%d\n",
    summary.requests, bad, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
