-- POST /api/v1/verify with the tokens of KG_TOKENS (one per line) in turn, each connection
-- pausing KG_DELAY_MS between its requests, so the load is bounded by its connections and not by
-- the server. `bench/run.py flood` runs it for a flood of made-up tokens and, with one valid
-- token in the list, for the paced valid load beside it.
--
-- KG_FROM sets the client address keygate sees (it runs with --trust-forwarded-for there):
-- unset, the connection's own (127.0.0.1); an address, that one in X-Forwarded-For; "many:N",
-- N addresses of 10.0.0.0/8 in turn, a distributed flood.
local tokens, n, next_index
local pause = tonumber(os.getenv("KG_DELAY_MS") or "0")
local from = os.getenv("KG_FROM") or ""
local many = tonumber(from:match("^many:(%d+)$") or "0")
local sent = 0

function init(args)
  local first
  tokens, n, first = read_list("KG_TOKENS")
  next_index = first
end

function delay()
  return pause
end

local function address()
  if many > 0 then
    local i = (sent + id * 7919) % many
    return string.format("10.%d.%d.%d", math.floor(i / 65536) % 256, math.floor(i / 256) % 256, i % 256)
  end
  return from
end

function request()
  local t = tokens[next_index]
  next_index = next_index % n + 1
  sent = sent + 1
  local headers = { ["Content-Type"] = "application/json" }
  if from ~= "" then
    headers["X-Forwarded-For"] = address()
  end
  return wrk.format("POST", "/api/v1/verify", headers, '{"token":"' .. t .. '"}')
end
