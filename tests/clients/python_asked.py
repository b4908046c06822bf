"""A Python MCP SDK client (PyPI `mcp` 2.x) that answers what a server asks it during a
call, for tests/behaviour/server_requests_reach_only_their_caller.rs.

Usage: python_asked.py MODE URL TOOL ARGS_JSON   (MODE: the client's `mode`, auto or legacy)

It declares sampling and elicitation, answers a sampling request with "a model's answer"
and an elicitation with {"name": "Ann", "email": "ann@example.com", ...}, calls TOOL with
ARGS_JSON over Streamable HTTP, and prints one JSON object: the protocol version, what it
was asked, and the call's result.
"""

import asyncio
import json
import sys

from mcp import Client, types


async def main():
    mode, url, tool, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    asked = []

    async def sample(context, params):
        asked.append({"method": "sampling/createMessage", "params": params.model_dump(mode="json", by_alias=True, exclude_none=True)})
        return types.CreateMessageResult(
            role="assistant", model="test-model",
            content=types.TextContent(type="text", text="a model's answer"),
        )

    async def elicit(context, params):
        asked.append({"method": "elicitation/create", "params": params.model_dump(mode="json", by_alias=True, exclude_none=True)})
        return types.ElicitResult(action="accept", content={
            "name": "Ann", "email": "ann@example.com", "age": 30, "color": "blue",
        })

    async with Client(url, mode=mode, sampling_callback=sample, elicitation_callback=elicit) as client:
        result = await client.call_tool(tool, json.loads(args))
        texts = [c.text for c in result.content if getattr(c, "type", "") == "text"]
        print(json.dumps({
            "protocol_version": client.protocol_version,
            "asked": asked,
            "result": {"is_error": bool(result.is_error), "text": texts},
        }))


asyncio.run(main())
