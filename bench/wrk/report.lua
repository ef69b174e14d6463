-- Appended to every scenario: one machine-readable line for bench/run.py.
-- Latencies are in microseconds; "failed" counts non-2xx/3xx answers and socket errors;
-- "valid" the answers that were 200 with code VALID when valid.lua counted them, else null.
function done(summary, latency, requests)
  local e = summary.errors
  local failed = e.connect + e.read + e.write + e.status + e.timeout
  local valid = "null"
  if counting_valid then
    local n = 0
    for _, thread in ipairs(threads) do
      n = n + thread:get("valid_answers")
    end
    valid = string.format("%d", n)
  end
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "failed": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "valid": %s}\n',
    summary.requests, summary.duration, failed,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, valid))
end
