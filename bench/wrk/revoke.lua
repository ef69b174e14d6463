-- DELETE /api/v1/tokens/{id} for ids read from KG_IDS (one per line), each thread walking its
-- own slice once. Requests past the end of the list repeat ids and get 404, which
-- bench/run.py counts as failed and reports.
local ids, next_index, stop_index

function init(args)
  local _
  ids, _, next_index, stop_index = read_list("KG_IDS")
end

function request()
  local i = next_index
  if next_index < stop_index then next_index = next_index + 1 end
  return wrk.format("DELETE", "/api/v1/tokens/" .. ids[i],
    { ["Authorization"] = os.getenv("KG_AUTH") })
end
