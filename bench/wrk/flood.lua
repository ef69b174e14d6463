-- POST /api/v1/verify with made-up tokens from KG_TOKENS (one per line), in turn, at a bounded
-- rate: each connection waits KG_DELAY_MS between its requests. A flood beside the valid load of
-- verify.lua, whose throughput `bench/run.py flood` compares with and without it.
local tokens, n, next_index
local pause = tonumber(os.getenv("KG_DELAY_MS") or "0")

function init(args)
  local first
  tokens, n, first = read_list("KG_TOKENS")
  next_index = first
end

function delay()
  return pause
end

function request()
  local t = tokens[next_index]
  next_index = next_index % n + 1
  return wrk.format("POST", "/api/v1/verify", { ["Content-Type"] = "application/json" },
    '{"token":"' .. t .. '"}')
end
