"""Personal mode with the Python MCP SDK's own client (PyPI `mcp`, 2.x), for
tests/behaviour/the_principal_confirms_their_own_agents_calls.rs.

Usage: python_confirm.py ANSWER TOOL ARGS_JSON COMMAND ARG...   (the client launches the gateway)
       python_confirm.py ANSWER TOOL ARGS_JSON http URL         (Streamable HTTP)

ANSWER is what the user answers when the gateway asks in the client (an elicitation):
  yes      accept, confirm = true
  no       accept, confirm = false
  decline  decline
  cancel   cancel
  never    never answers (the question stays open)
  late     answers yes after three seconds
  none     the client declares no elicitation support at all

MCP_WARDEN_TEST_MODE is the client's `mode` (default "auto": 2026-07-28, where the
question comes as the call's answer and the reply as the call made again; "legacy": the
question is a request on the call's stream).

It calls TOOL with ARGS_JSON, and prints one JSON object on stdout: the questions it was
asked (message and schema) and the call's result (is_error, text).
"""

import asyncio
import json
import os
import sys

from mcp import Client, types
from mcp.client.stdio import StdioServerParameters


async def main():
    answer, tool, args, command, rest = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
    asked = []

    async def elicit(context, params):
        asked.append({"message": params.message, "schema": params.requested_schema})
        if answer == "yes":
            return types.ElicitResult(action="accept", content={"confirm": True})
        if answer == "no":
            return types.ElicitResult(action="accept", content={"confirm": False})
        if answer == "decline":
            return types.ElicitResult(action="decline")
        if answer == "cancel":
            return types.ElicitResult(action="cancel")
        if answer == "late":
            await asyncio.sleep(3)
            return types.ElicitResult(action="accept", content={"confirm": True})
        await asyncio.sleep(3600)  # never

    server = rest[0] if command == "http" else StdioServerParameters(command=command, args=rest)
    callback = None if answer == "none" else elicit
    seen = {}
    mode = os.environ.get("MCP_WARDEN_TEST_MODE", "auto")
    async with Client(server, elicitation_callback=callback, mode=mode) as client:
        result = await client.call_tool(tool, json.loads(args))
        texts = [c.text for c in result.content if getattr(c, "type", "") == "text"]
        seen["result"] = {"is_error": bool(result.is_error), "text": texts}
        seen["asked"] = asked
        print(json.dumps(seen), flush=True)
        # A question left open (`never`) would hold the client's exit: leave at once.
        os._exit(0)


asyncio.run(main())
