-- POST /api/v1/verify with a different valid token per request, read from KG_TOKENS (one per
-- line). KG_ORDER=sequential walks the list (thread i starts at its own slice, so a short run
-- asks for each token once: a cold cache); KG_ORDER=random picks at random.
local tokens = {}
local n = 0
local next_index = 1
local random_order = os.getenv("KG_ORDER") == "random"

local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("id", thread_count)
end

function init(args)
  for line in io.lines(os.getenv("KG_TOKENS")) do
    n = n + 1
    tokens[n] = line
  end
  local count = tonumber(os.getenv("KG_THREADS") or "1")
  next_index = math.floor((id - 1) * n / count) + 1
  math.randomseed(id * 7919 + os.time())
end

function request()
  local t
  if random_order then
    t = tokens[math.random(n)]
  else
    t = tokens[next_index]
    next_index = next_index % n + 1
  end
  return wrk.format("POST", "/api/v1/verify", { ["Content-Type"] = "application/json" },
    '{"token":"' .. t .. '","scopes":["metrics:read"]}')
end
