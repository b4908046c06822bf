-- wrk script: `tools/call` over Streamable HTTP inside one MCP session, on keep-alive
-- connections. Environment: SESSION (the Mcp-Session-Id, may be empty), TOOL, ARGS (JSON);
-- MODERN=1 sends each call as a 2026-07-28 client does instead (no session: the version,
-- capabilities and client info in its `_meta`, and the Mcp-Method and Mcp-Name headers).
-- Every answer is checked: an HTTP status other than 200, a body without a result, or a
-- result with isError counts as bad, and `done` prints the count.
local session = os.getenv("SESSION") or ""
local tool = os.getenv("TOOL") or "echo"
local args = os.getenv("ARGS") or '{"message":"hi"}'
local modern = os.getenv("MODERN") == "1"
local meta = ''
if modern then
  meta = ',"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
    .. '"io.modelcontextprotocol/clientCapabilities":{},'
    .. '"io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"1"}}'
end
local threads = {}

function setup(thread)
  thread:set("id", #threads * 1000000000)
  thread:set("bad", 0)
  table.insert(threads, thread)
end

function init()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json, text/event-stream"
  if modern then
    wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
    wrk.headers["Mcp-Method"] = "tools/call"
    wrk.headers["Mcp-Name"] = tool
  else
    wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
    if session ~= "" then wrk.headers["Mcp-Session-Id"] = session end
  end
end

function request()
  id = id + 1
  local body = string.format(
    '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"%s","arguments":%s%s}}',
    id, tool, args, meta)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"result"', 1, true)
      or string.find(body, '"isError":true', 1, true) then
    bad = bad + 1
    if bad <= 2 then io.stderr:write("bad answer: " .. status .. " " .. string.sub(body, 1, 300) .. "\n") end
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("bad") end
  io.write(string.format("bad answers: %d\n", total))
end
