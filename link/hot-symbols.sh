#!/usr/bin/env bash
# Regenerate link/hot-symbols.txt: the functions of the release binary that run while the
# gateway starts on its embedded defaults and serves a client, over Streamable HTTP and
# over stdio (an MCP session: initialize, tools/list, tools/call). build.rs hands the list
# to the linker, which places those functions next to each other: the pages the kernel
# maps for them then hold little else, and an idle gateway keeps a fraction of its code
# resident. Both builds of the binary are recorded: the one `cargo build --release` makes
# and the one `cargo bench` makes (with the dev-dependencies' features, which change the
# names of many functions), so the bench measures the layout users run. Run it after a
# dependency or the Rust toolchain changes (the names then change and the list no longer
# matches: the build still works, only the memory figure of `cargo bench --bench gateway`
# shows the difference). It builds the binary both ways (about 15 minutes on 2 cores), and
# the next build of each links again with the new list.
#
# Needs valgrind (Debian: apt-get install valgrind), curl and python3.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT="$REPO/link/hot-symbols.txt"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r "$REPO/tool-manifests" "$REPO/policies" "$WORK/"
# The path of the `mcp-warden` executable a cargo command builds (its JSON messages).
built() {
  cargo "$@" --manifest-path "$REPO/Cargo.toml" --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "mcp-warden" \
            and "bin" in m["target"]["kind"] and m.get("executable"):
        print(m["executable"])'
}
record() { # TAG BIN: what BIN runs over HTTP and over stdio, into $WORK/TAG-*.out
TAG=$1 BIN=$2
run() { # name args...: the gateway under callgrind, with function names as linked
  local name=$1; shift
  (cd "$WORK" && rm -rf .mcp-warden && MCP_WARDEN_LOG=warn valgrind --tool=callgrind --demangle=no \
     --compress-strings=no --callgrind-out-file="$WORK/$TAG-$name.out" "$BIN" "$@")
}
python3 - "$WORK" <<'PY' &
import http.client, json, sys, time
def post(body, sid=None):
    c = http.client.HTTPConnection("127.0.0.1", 8787, timeout=60)
    h = {"content-type": "application/json", "accept": "application/json, text/event-stream",
         "mcp-protocol-version": "2025-11-25"}
    if sid: h["mcp-session-id"] = sid
    c.request("POST", "/mcp", json.dumps(body), h)
    r = c.getresponse(); r.read()
    return r.getheader("mcp-session-id")
for _ in range(600):
    try:
        c = http.client.HTTPConnection("127.0.0.1", 8787, timeout=60)
        c.request("GET", "/healthz"); c.getresponse().read(); break
    except Exception: time.sleep(0.2)
sid = post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
      "capabilities": {}, "clientInfo": {"name": "hot-symbols", "version": "1"}}})
post({"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, sid)
for i in range(100):
    post({"jsonrpc": "2.0", "id": 2 + i, "method": "tools/call", "params": {"name": "demo_echo",
          "arguments": {"text": "hi", "intent": "regenerate the hot symbol list"}}}, sid)
time.sleep(2)
import subprocess; subprocess.run(["pkill", "-TERM", "-f", "callgrind.*serve --transport http"])
PY
run http serve --transport http >/dev/null 2>&1 || true
wait
{
  printf '%s\n' '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"hot-symbols","version":"1"}}}'
  printf '%s\n' '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
  for i in 2 3 4; do
    printf '%s\n' "{\"jsonrpc\":\"2.0\",\"id\":$i,\"method\":\"tools/call\",\"params\":{\"name\":\"demo_echo\",\"arguments\":{\"text\":\"hi\",\"intent\":\"regenerate the hot symbol list\"}}}"
  done
  sleep 30
} | run stdio serve --transport stdio >/dev/null 2>&1 || true
}
BIN=$(built build --release | tail -1)
cp "$BIN" "$WORK/release"
BENCH=$(built bench --no-run --bench gateway | tail -1)
cp "$BENCH" "$WORK/bench"
record release "$WORK/release"
record bench "$WORK/bench"
python3 - "$WORK" "$OUT" <<'PY'
# Each function's own cost (instructions) summed over all runs; the list goes hottest
# first, so the code every call runs through lies together at the front.
import collections, glob, sys
work, out = sys.argv[1], sys.argv[2]
cost = collections.Counter()
for path in glob.glob(work + "/*.out*"):
    ob, fn, skip = "", None, False
    for line in open(path, errors="replace"):
        if line.startswith("ob="):
            ob = line[3:].strip()
        elif line.startswith("fn="):
            name = line[3:].strip()
            fn = name if ob in (work + "/release", work + "/bench") and name.startswith(("_ZN", "_R")) else None
            if fn:
                cost[fn] += 0
        elif line.startswith("calls="):
            skip = True  # the next line is the callee's inclusive cost, not this one's
        elif line[:1].isdigit() or line[:1] in "+-*":
            if skip:
                skip = False
            elif fn:
                parts = line.split()
                if len(parts) > 1 and parts[1].isdigit():
                    cost[fn] += int(parts[1])
if len(cost) < 1000:
    sys.exit(f"only {len(cost)} functions recorded: did the gateway start under valgrind?")
with open(out, "w") as f:
    f.write("\n".join(name for name, _ in sorted(cost.items(), key=lambda kv: (-kv[1], kv[0]))) + "\n")
print(f"{len(cost)} functions written to {out}")
PY
