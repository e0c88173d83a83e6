-- wrk script: POST a JSON body read from $BENCH_BODY; print a JSON summary line when done.
-- $BENCH_UNIQUE=1 replaces "{N}" in the body with a per-request counter (unique prompts, so the
-- gateway's embedding cache never hits); $BENCH_SEED offsets the counter across runs.
-- $BENCH_AUTH, when set, is sent as a bearer token.
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end

-- $BENCH_BODIES, when set: a file of JSON bodies, one a line, each with "{N}"; request n sends
-- body n modulo their count with n in it (real, varied prompts, each request unique).
local bodies_file = os.getenv("BENCH_BODIES")
if bodies_file and bodies_file ~= "" then
  local list = {}
  for line in io.lines(bodies_file) do
    if line ~= "" then
      local i = string.find(line, "{N}", 1, true)
      if i then
        list[#list + 1] = {string.sub(line, 1, i - 1), string.sub(line, i + 3)}
      else
        list[#list + 1] = {line, ""}  -- no placeholder: sent as is
      end
    end
  end
  local n = tonumber(os.getenv("BENCH_SEED") or "0") * 10000000
  request = function()
    n = n + 1
    local b = list[(n % #list) + 1]
    return wrk.format(nil, nil, nil, b[1] .. tostring(n) .. b[2])
  end
elseif os.getenv("BENCH_UNIQUE") == "1" then
  local i = string.find(body, "{N}", 1, true)
  local pre, post = body, ""
  if i then
    pre, post = string.sub(body, 1, i - 1), string.sub(body, i + 3)
  end
  local n = tonumber(os.getenv("BENCH_SEED") or "0") * 10000000
  request = function()
    n = n + 1
    return wrk.format(nil, nil, nil, pre .. tostring(n) .. post)
  end
end

-- $BENCH_DELAY_MS: mean think time per connection between requests (paced load instead of
-- saturation), drawn uniformly from [0, 2 x mean] so the connections do not fire in bursts.
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pause > 0 then
  math.randomseed(tonumber(os.getenv("BENCH_SEED") or "0") + os.time())
  delay = function()
    return math.random(0, 2 * pause)
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
