-- wrk script: each thread posts the pre-signed PagerDuty deliveries of its own file (<prefix>.<thread>), in order,
-- one per request, so every event id is sent once (the file wraps around only if the run outlasts it; `wraps`
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
  file = assert(io.open(args[1] .. "." .. tid, "r"))
  sent, wraps = 0, 0
end

function request()
  local line = file:read("*l")
  if line == nil then
    file:seek("set", 0)
    wraps = wraps + 1
    line = file:read("*l")
  end
  local a = line:find("\t", 1, true)
  local b = line:find("\t", a + 1, true)
  sent = sent + 1
  local headers = {["Content-Type"] = "application/json", ["X-PagerDuty-Signature"] = line:sub(a + 1, b - 1)}
  return wrk.format(nil, nil, headers, line:sub(b + 1))
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
