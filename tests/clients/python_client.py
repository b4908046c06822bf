"""Drive mcp-warden with the Python MCP SDK's own client (PyPI `mcp`, 2.x) for
tests/python_sdk_client_through_the_gateway.rs.

Usage: python_client.py stdio COMMAND ARG...   (the client launches the gateway)
       python_client.py http URL

It lists the tools, makes one allowed call (demo_echo) and one refused call (demo_write_note
without an intent), and prints what it saw as one JSON object on stdout. With
MCP_WARDEN_TEST_CALL set to {"name": ..., "arguments": {...}}, it makes that call too ("extra").
MCP_WARDEN_TEST_MODE is the client's `mode` (default "auto": `server/discover` first, then
2026-07-28; "legacy": the `initialize` handshake).
"""

import asyncio
import json
import os
import sys

from mcp import Client
from mcp.client.stdio import StdioServerParameters


def texts(result):
    return [c.text for c in result.content if getattr(c, "type", "") == "text"]


async def main():
    kind, target, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    server = StdioServerParameters(command=target, args=rest) if kind == "stdio" else target
    seen = {}
    mode = os.environ.get("MCP_WARDEN_TEST_MODE", "auto")
    async with Client(server, mode=mode) as client:
        seen["protocol_version"] = client.protocol_version
        seen["server"] = client.server_info.name if client.server_info else None
        listed = await client.list_tools()
        seen["tools"] = sorted(t.name for t in listed.tools)
        ok = await client.call_tool("demo_echo", {"text": "from the python sdk"})
        seen["allowed"] = {"is_error": bool(ok.is_error), "text": texts(ok)}
        refused = await client.call_tool("demo_write_note", {"title": "x", "body": "y"})
        seen["refused"] = {"is_error": bool(refused.is_error), "text": texts(refused)}
        extra = os.environ.get("MCP_WARDEN_TEST_CALL")
        if extra:
            call = json.loads(extra)
            result = await client.call_tool(call["name"], call["arguments"])
            seen["extra"] = {"is_error": bool(result.is_error), "text": texts(result)}
    print(json.dumps(seen))


asyncio.run(main())
