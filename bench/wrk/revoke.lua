-- DELETE /api/v1/tokens/{id} for ids read from KG_IDS (one per line), each thread walking its
-- own slice once. Requests past the end of the list repeat ids and get 404, which
-- bench/run.py counts as failed and reports.
local ids = {}
local n = 0
local next_index = 1
local stop_index = 0
local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("id", thread_count)
end

function init(args)
  for line in io.lines(os.getenv("KG_IDS")) do
    n = n + 1
    ids[n] = line
  end
  local count = tonumber(os.getenv("KG_THREADS") or "1")
  next_index = math.floor((id - 1) * n / count) + 1
  stop_index = math.floor(id * n / count)
end

function request()
  local i = next_index
  if next_index < stop_index then next_index = next_index + 1 end
  return wrk.format("DELETE", "/api/v1/tokens/" .. ids[i],
    { ["Authorization"] = os.getenv("KG_AUTH") })
end
