-- Appended to every scenario: one machine-readable line for bench/run.py.
-- Latencies are in microseconds; "failed" counts non-2xx/3xx answers and socket errors.
function done(summary, latency, requests)
  local e = summary.errors
  local failed = e.connect + e.read + e.write + e.status + e.timeout
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "failed": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, failed,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
