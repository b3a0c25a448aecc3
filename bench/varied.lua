-- Like post.lua, but every request's user message is different (no two bodies alike).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench"
local template = os.getenv("BENCH_BODY")
local counter = 0
request = function()
  counter = counter + 1
  local body = string.gsub(template, "benchmark question", "benchmark question " .. counter)
  return wrk.format(nil, nil, nil, body)
end
