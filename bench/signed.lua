-- wrk script: each thread posts the pre-signed PagerDuty deliveries of its own file (<prefix>.<thread>), in order,
-- one per request, so every event id is sent once (the list wraps around only if the run outlasts it; `wraps`
-- says so). Lines are "event_id<TAB>signature<TAB>body". done() prints one BENCH_JSON line for bench/ingest.py.
wrk.method = "POST"
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  -- Formatted up front: building each request in request() costs wrk CPU that the server would otherwise get.
  reqs = {}
  for line in io.lines(args[1] .. "." .. tid) do
    local a = line:find("\t", 1, true)
    local b = line:find("\t", a + 1, true)
    local headers = {["Content-Type"] = "application/json", ["X-PagerDuty-Signature"] = line:sub(a + 1, b - 1)}
    reqs[#reqs + 1] = wrk.format(nil, nil, headers, line:sub(b + 1))
  end
  i, n, sent, wraps = 0, #reqs, 0, 0
end

function request()
  i = i + 1
  if i > n then
    i, wraps = 1, wraps + 1
  end
  sent = sent + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local s, w = 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("sent")
    w = w + t:get("wraps")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"completed": %d, "duration_us": %d, "sent": %d, "wraps": %d, "non_2xx": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, s, w, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
