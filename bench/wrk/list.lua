-- Put before every scenario by bench/run.py: numbers wrk's threads (1, 2, …) and reads a list
-- file (one item per line) for the scenarios that walk one, each thread from its own slice.
-- `threads` keeps them, so that report.lua can add up what each one counted.
local thread_count = 0
threads = {}
function setup(thread)
  thread_count = thread_count + 1
  thread:set("id", thread_count)
  threads[thread_count] = thread
end

-- The items of the file named by `env_var`, their count, and this thread's slice of them
-- (first and last index). Call it from init(), where `id` is set.
function read_list(env_var)
  local items, n = {}, 0
  for line in io.lines(os.getenv(env_var)) do
    n = n + 1
    items[n] = line
  end
  local count = tonumber(os.getenv("KG_THREADS") or "1")
  return items, n, math.floor((id - 1) * n / count) + 1, math.floor(id * n / count)
end
