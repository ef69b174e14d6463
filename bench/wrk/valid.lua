-- Put between a scenario and report.lua when a run must know how many verifications passed:
-- counts the answers that are 200 with code VALID (a refused verification, e.g. USAGE_EXCEEDED,
-- is also a 200). `bench/run.py credits` checks with it that exactly the granted credits were
-- spent. wrk then reads every body, which costs the load generator some of its speed.
counting_valid = true
valid_answers = 0

function response(status, headers, body)
  if status == 200 and body:find('"code":"VALID"', 1, true) then
    valid_answers = valid_answers + 1
  end
end
