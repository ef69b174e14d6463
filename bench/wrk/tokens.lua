-- POST /api/v1/verify with a different valid token per request, read from KG_TOKENS (one per
-- line). KG_ORDER=sequential walks the list (thread i starts at its own slice, so a short run
-- asks for each token once: a cold cache); KG_ORDER=random picks at random.
local tokens, n, next_index
local random_order = os.getenv("KG_ORDER") == "random"

function init(args)
  tokens, n, next_index = read_list("KG_TOKENS")
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
