-- wrk script of benchmarks/ack.py. Arguments after `--`:
--   POST <file> <threads>   replay pre-signed deliveries, each once; a line is
--                           "<path>\t<idempotency key>\t<signature>\t<body>"; thread i takes lines i, i+n, ...
--   GET <path>              plain GETs (the load generator's ceiling check)
-- Every response that is not 200 is counted. done() prints one line: WRK_JSON {...}.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  mode = args[1]
  reqs, idx, wrapped, non200, loaded = {}, 0, 0, 0, 0
  if mode == "GET" then
    reqs[1] = wrk.format("GET", args[2])
    return
  end
  local n, i = tonumber(args[3]), 0
  for line in io.lines(args[2]) do
    if i % n == tid then
      local path, key, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", path, {
        ["Content-Type"] = "application/json",
        ["X-Webhook-Event"] = "whatsapp.message.received",
        ["X-Webhook-Payload-Version"] = "v2",
        ["X-Idempotency-Key"] = key,
        ["X-Webhook-Signature"] = sig,
      }, body)
    end
    i = i + 1
  end
  loaded = #reqs
end

function request()
  idx = idx + 1
  if idx > #reqs then
    idx = 1
    if mode ~= "GET" then wrapped = wrapped + 1 end
  end
  return reqs[idx]
end

function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

function done(summary, latency, requests)
  local non, wrap, pool = 0, 0, 0
  for _, t in ipairs(threads) do
    non = non + t:get("non200")
    wrap = wrap + t:get("wrapped")
    pool = pool + t:get("loaded")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"non200":%d,"wrapped":%d,"pool":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes, non, wrap, pool,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
