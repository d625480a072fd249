-- What every dpr bench wrk run reports: one JSON line prefixed "@dpr-wrk ",
-- with the latency histogram itself (value in µs, count) rather than a few
-- percentiles, so the runner can merge several wrk processes exactly, and the
-- count of responses per `x-served-by` header when the script counts them.
-- Loaded by the other scripts; used on its own for plain GET loads.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local function histogram(stats)
  local parts = {}
  for i = 1, #stats do
    local value, count = stats(i)
    parts[#parts + 1] = string.format("[%d,%d]", value, count)
  end
  return "[" .. table.concat(parts, ",") .. "]"
end

local function served_by()
  local total = {}
  for _, t in ipairs(threads) do
    local counts = t:get("served") or {}
    for host, n in pairs(counts) do total[host] = (total[host] or 0) + n end
  end
  local parts = {}
  for host, n in pairs(total) do parts[#parts + 1] = string.format("%q:%d", host, n) end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '@dpr-wrk {"requests":%d,"durationUs":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"servedBy":%s,"latencyUs":%s}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    served_by(), histogram(latency)))
end
