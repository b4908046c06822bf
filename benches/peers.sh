#!/usr/bin/env bash
# mcp-warden side by side with other MCP gateways: `tools/call echo` over Streamable HTTP
# inside one MCP session, on keep-alive connections (wrk), every target in front of the
# same upstream (npm @modelcontextprotocol/server-everything over stdio), 1 and 8
# connections per target, interleaved, in one run; and three mcp-warden replicas on one
# PostgreSQL (Debian's, a cluster of its own under target/peers) behind Debian's HAProxy,
# round robin, the session's requests spread over all three. Then the crash check: `kill
# -9` of the gateway in the middle of a run, and `mcp-warden audit verify` of every log.
#
# Installs what it needs by package name into target/peers (Debian: wrk, curl,
# postgresql, haproxy; npm:
# server-everything, supergateway; PyPI: mcp-contextforge-gateway, on a Python 3.12 venv
# with generated local-only secrets). Not run by CI.
#
# Usage: benches/peers.sh [SECONDS_PER_CELL]   (default 10; env PORT_BASE, default 18700)
set -euo pipefail

SECS=${1:-10}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$REPO/target/peers
BASE=${PORT_BASE:-18700}
EVERYTHING_VERSION=$(node -p "require('$REPO/package.json').devDependencies['@modelcontextprotocol/server-everything']")
SUPERGATEWAY_VERSION=4.0.0
CONTEXTFORGE_VERSION=1.1.0
say() { printf '[peers] %s\n' "$*" >&2; }

install() {
  if ! command -v wrk >/dev/null || ! command -v curl >/dev/null || ! command -v haproxy >/dev/null ||
     ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    say "installing wrk, curl, postgresql and haproxy (Debian)"
    apt-get update -qq && apt-get install -y -qq wrk curl postgresql haproxy >/dev/null
  fi
  mkdir -p "$WORK/npm" "$WORK/cf"
  if [ ! -f "$WORK/npm/node_modules/supergateway/package.json" ] ||
     [ "$(node -p "require('$WORK/npm/node_modules/@modelcontextprotocol/server-everything/package.json').version" 2>/dev/null)" != "$EVERYTHING_VERSION" ]; then
    say "installing server-everything $EVERYTHING_VERSION and supergateway $SUPERGATEWAY_VERSION (npm)"
    (cd "$WORK/npm" && { [ -f package.json ] || npm init -y >/dev/null; } &&
      npm install --no-audit --no-fund --loglevel=error \
        "@modelcontextprotocol/server-everything@$EVERYTHING_VERSION" "supergateway@$SUPERGATEWAY_VERSION" >/dev/null)
  fi
  if [ ! -x "$WORK/cf-venv/bin/python" ]; then
    local py=${PYTHON312:-} candidate
    for candidate in python3.12 "$HOME"/.pyenv/versions/3.12.*/bin/python3.12 /usr/bin/python3.12; do
      [ -z "$py" ] && "$candidate" --version >/dev/null 2>&1 && py=$candidate
    done
    [ -n "$py" ] || { say "ContextForge needs Python 3.12: set PYTHON312=/path/to/python3.12"; exit 1; }
    "$py" -m venv "$WORK/cf-venv"
  fi
  local have; have=$("$WORK/cf-venv/bin/pip" show mcp-contextforge-gateway 2>/dev/null || true)
  if ! grep -q "^Version: $CONTEXTFORGE_VERSION$" <<<"$have"; then
    say "installing mcp-contextforge-gateway $CONTEXTFORGE_VERSION (PyPI)"
    "$WORK/cf-venv/bin/pip" install -q "mcp-contextforge-gateway==$CONTEXTFORGE_VERSION"
  fi
  if [ ! -f "$WORK/cf/.env" ]; then
    # ContextForge refuses to start on its placeholder secrets.
    (cd "$WORK/cf" && ../cf-venv/bin/python -m mcpgateway.scripts.init_secrets --output .env >/dev/null)
    chmod 600 "$WORK/cf/.env"
  fi
  say "building mcp-warden (release)"
  (cd "$REPO" && cargo build --release --locked -q)
}

EV="$WORK/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
BIN="$REPO/target/release/mcp-warden"
PIDS=()

# start NAME PORT COMMAND...: run a target in its own process group, wait for its port.
start() {
  local name=$1 port=$2; shift 2
  if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
    say "port $port is already in use: stop what listens there (or set PORT_BASE)"; exit 1
  fi
  setsid "$@" >"$WORK/logs/$name.log" 2>&1 </dev/null &
  PIDS+=($!)
  echo $! >"$WORK/logs/$name.pid"
  for _ in $(seq 150); do
    curl -s -o /dev/null "http://127.0.0.1:$port/mcp" && return 0
    sleep 0.2
  done
  say "$name did not start on :$port (see $WORK/logs/$name.log)"; exit 1
}

stop_all() {
  for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  sleep 1
  for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  PIDS=()
}
trap 'stop_all; stop_replicas' EXIT

# warden_config NAME PORT STATE_DIR: mcp-warden in front of server-everything over stdio,
# its embedded-default durability (the audit log fsynced under STATE_DIR).
warden_config() {
  cat >"$WORK/$1.toml" <<TOML
[gateway]
manifests = "$REPO/tool-manifests"
policy_model = "$REPO/policies/model.conf"
policy = "$WORK/policy.csv"
state_dir = "$3"
relist_interval = "0s"

[listen]
http = "127.0.0.1:$2"

[identity.http]
agent = "agent:bench"
on_behalf_of = "user:bench"

[[upstream]]
id = "everything"
command = "node"
args = ["$EV", "stdio"]
TOML
}

# as_postgres COMMAND...: PostgreSQL's programs refuse to run as root.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# replicas PORT_PG PORT_LB PORT...: a PostgreSQL cluster on PORT_PG, one mcp-warden
# replica on each PORT (the same config but its name: the store, the session key), and
# HAProxy on PORT_LB in front of them.
replicas() {
  local pg=$1 lb=$2; shift 2
  local pgbin; pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  rm -rf "$WORK/pg" && mkdir -p "$WORK/pg"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$WORK/pg"
  as_postgres "$pgbin/initdb" -D "$WORK/pg/data" -U postgres --auth=trust >/dev/null
  as_postgres "$pgbin/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w start \
    -o "-p $pg -k $WORK/pg -c listen_addresses=127.0.0.1" >/dev/null
  psql -q -h 127.0.0.1 -p "$pg" -U postgres -c 'CREATE DATABASE warden' >/dev/null
  local key; key=$(openssl rand -hex 32 2>/dev/null || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  local n=0 servers=""
  for port in "$@"; do
    n=$((n + 1))
    warden_config "replica$n" "$port" "$WORK/replica$n"
    sed -i "s|^\[gateway\]|[gateway]\nreplica = \"gw-$n\"|" "$WORK/replica$n.toml"
    printf '\n[store]\nurl = "postgres://postgres@127.0.0.1:%s/warden"\nsession_key = "%s"\n' "$pg" "$key" >>"$WORK/replica$n.toml"
    rm -rf "$WORK/replica$n" && mkdir -p "$WORK/replica$n"
    start "mcp-warden-replica$n" "$port" env MCP_WARDEN_LOG=warn "$BIN" serve --transport http --config "$WORK/replica$n.toml"
    servers="$servers  server gw$n 127.0.0.1:$port check inter 200ms fall 1 rise 1\n"
  done
  printf 'global\n  maxconn 512\n\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 60s\n  timeout server 60s\n  retries 2\n  option redispatch\n\nfrontend mcp\n  bind 127.0.0.1:%s\n  default_backend gateways\n\nbackend gateways\n  balance roundrobin\n  option httpchk GET /healthz\n  http-check expect status 200\n%b' "$lb" "$servers" >"$WORK/haproxy.cfg"
  start haproxy "$lb" haproxy -db -f "$WORK/haproxy.cfg"
}

stop_replicas() {
  local pgbin; pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  as_postgres "$pgbin/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1 || true
}

# session URL: open an MCP session, print its id (empty for a server without sessions).
session() {
  local headers; headers=$(mktemp)
  curl -s -D "$headers" -o /dev/null -X POST "$1" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"peers.sh","version":"1"}}}'
  local sid; sid=$(grep -i '^mcp-session-id:' "$headers" | awk '{print $2}' | tr -d '\r')
  rm -f "$headers"
  curl -s -o /dev/null -X POST "$1" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2025-11-25' \
    ${sid:+-H "mcp-session-id: $sid"} -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  echo "$sid"
}

# cell NAME PORT TOOL CONNECTIONS [modern]: one wrk run; appends "NAME C calls/s p50 p99 bad"
# to results. `modern`: each call as a 2026-07-28 client sends it (no session).
cell() {
  local name=$1 url="http://127.0.0.1:$2/mcp" tool=$3 c=$4 modern=${5:-} sid="" out
  [ -n "$modern" ] || sid=$(session "$url")
  out=$(SESSION=$sid MODERN=${modern:+1} TOOL=$tool ARGS='{"message":"hi"}' \
    wrk -t "$(( c > 1 ? 2 : 1 ))" -c "$c" -d "${SECS}s" --latency -s "$REPO/benches/peers/tools_call.lua" "$url" 2>>"$WORK/logs/wrk.err")
  [ -n "$sid" ] && curl -s -o /dev/null -X DELETE "$url" -H "mcp-session-id: $sid" -H 'mcp-protocol-version: 2025-11-25'
  local rps p50 p99 bad errors
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  bad=$(awk '/^bad answers:/ {print $3}' <<<"$out")
  errors=$(awk '/Socket errors|Non-2xx/ {print}' <<<"$out" | tr '\n' ' ')
  echo "$name $c ${rps:-0} ${p50:-?} ${p99:-?} ${bad:-?} ${errors}" >>"$WORK/results.txt"
  say "$name c=$c: ${rps:-0} calls/s, p50 ${p50:-?}, p99 ${p99:-?}, bad ${bad:-?} ${errors}"
}

main() {
  install
  rm -rf "$WORK/logs" "$WORK/durable" /dev/shm/mcp-warden-peers "$WORK/results.txt"
  mkdir -p "$WORK/logs" "$WORK/durable" /dev/shm/mcp-warden-peers
  printf 'p, agent:bench, everything/*, read, allow\np, user:bench, everything/*, read, allow\n' >"$WORK/policy.csv"
  warden_config durable $((BASE + 4)) "$WORK/durable"
  warden_config tmpfs $((BASE + 5)) /dev/shm/mcp-warden-peers

  start direct $((BASE + 1)) env PORT=$((BASE + 1)) node "$EV" streamableHttp
  start contextforge $((BASE + 2)) bash -c "cd '$WORK/cf' && exec ../cf-venv/bin/python -m mcpgateway.translate \
    --stdio 'node $EV stdio' --expose-streamable-http --port $((BASE + 2)) --logLevel warning"
  start supergateway $((BASE + 3)) node "$WORK/npm/node_modules/supergateway/dist/index.js" \
    --stdio "node $EV stdio" --outputTransport streamableHttp --stateful --port $((BASE + 3)) --logLevel none
  start mcp-warden $((BASE + 4)) env MCP_WARDEN_LOG=warn "$BIN" serve --transport http --config "$WORK/durable.toml"
  start mcp-warden-tmpfs $((BASE + 5)) env MCP_WARDEN_LOG=warn "$BIN" serve --transport http --config "$WORK/tmpfs.toml"
  replicas $((BASE + 10)) $((BASE + 9)) $((BASE + 6)) $((BASE + 7)) $((BASE + 8))

  for c in 1 8; do
    cell direct-to-server-everything $((BASE + 1)) echo $c
    cell contextforge-translate $((BASE + 2)) echo $c
    cell supergateway-stateful $((BASE + 3)) echo $c
    cell mcp-warden $((BASE + 4)) everything_echo $c
    cell mcp-warden-2026-07-28 $((BASE + 4)) everything_echo $c modern
    cell mcp-warden-audit-on-tmpfs $((BASE + 5)) everything_echo $c
    cell mcp-warden-3-replicas-haproxy $((BASE + 9)) everything_echo $c
  done
  report
  crash_check
}

report() {
  echo
  echo "tools/call echo over Streamable HTTP, keep-alive, one MCP session, ${SECS}s per cell, $(date -u +%F), $(nproc) cores"
  printf '| %-40s | %9s | %8s | %8s | %9s | %8s | %8s |\n' target "c=1 /s" p50 p99 "c=8 /s" p50 p99
  printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..42})" ----------- ---------- ---------- ----------- ---------- ----------
  for t in direct-to-server-everything contextforge-translate supergateway-stateful mcp-warden mcp-warden-2026-07-28 mcp-warden-audit-on-tmpfs mcp-warden-3-replicas-haproxy; do
    local one eight
    one=$(awk -v t="$t" '$1 == t && $2 == 1' "$WORK/results.txt")
    eight=$(awk -v t="$t" '$1 == t && $2 == 8' "$WORK/results.txt")
    local label=$t
    [ "$t" = mcp-warden ] && label="mcp-warden (durable audit, policy)"
    [ "$t" = mcp-warden-2026-07-28 ] && label="mcp-warden, 2026-07-28 requests"
    [ "$t" = mcp-warden-audit-on-tmpfs ] && label="mcp-warden (audit log on tmpfs)"
    [ "$t" = mcp-warden-3-replicas-haproxy ] && label="3 mcp-warden replicas, PostgreSQL, HAProxy"
    printf '| %-40s | %9.0f | %8s | %8s | %9.0f | %8s | %8s |\n' "$label" \
      "$(awk '{print $3}' <<<"$one")" "$(awk '{print $4}' <<<"$one")" "$(awk '{print $5}' <<<"$one")" \
      "$(awk '{print $3}' <<<"$eight")" "$(awk '{print $4}' <<<"$eight")" "$(awk '{print $5}' <<<"$eight")"
  done
  echo
  for c in 1 8; do
    awk -v c=$c '$2 == c { r[$1] = $3 } END {
      printf "c=%d: mcp-warden / contextforge-translate = %.2f, / supergateway = %.2f, / direct = %.2f\n",
        c, r["mcp-warden"] / r["contextforge-translate"], r["mcp-warden"] / r["supergateway-stateful"],
        r["mcp-warden"] / r["direct-to-server-everything"] }' "$WORK/results.txt"
  done
  local bad; bad=$(awk '$6 != 0 || NF > 6' "$WORK/results.txt")
  [ -z "$bad" ] && echo "every answer was a result (no errors, no bad answers)" || { echo "cells with errors:"; echo "$bad"; }
}

# kill -9 the durable gateway in the middle of a run; its log must still verify, and a
# gateway started on it must take it up.
crash_check() {
  echo
  local url="http://127.0.0.1:$((BASE + 4))/mcp" sid pid
  sid=$(session "$url")
  pid=$(cat "$WORK/logs/mcp-warden.pid")
  SESSION=$sid TOOL=everything_echo ARGS='{"message":"hi"}' \
    wrk -t2 -c8 -d5s -s "$REPO/benches/peers/tools_call.lua" "$url" >/dev/null 2>&1 &
  local load=$!
  sleep 2
  kill -KILL -- "-$pid"
  wait "$load" || true
  echo "kill -9 during a run: $("$BIN" audit verify "$WORK/durable/audit.jsonl" 2>&1 | tail -1)"
  start mcp-warden-restarted $((BASE + 4)) env MCP_WARDEN_LOG=warn "$BIN" serve --transport http --config "$WORK/durable.toml"
  cell mcp-warden-after-restart $((BASE + 4)) everything_echo 1 2>/dev/null
  stop_all
  echo "after a restart on that log and one more run: $("$BIN" audit verify "$WORK/durable/audit.jsonl" 2>&1 | tail -1)"
  echo "tmpfs log: $("$BIN" audit verify /dev/shm/mcp-warden-peers/audit.jsonl 2>&1 | tail -1)"
  # Fresh each run: the copies of an earlier run would match the replicas' own glob.
  rm -rf "$WORK/replica-logs"
  echo "replicas' logs: $(mkdir -p "$WORK/replica-logs" && cp "$WORK"/replica[0-9]*/audit-gw-*.jsonl "$WORK/replica-logs/" && "$BIN" audit verify "$WORK/replica-logs" 2>&1 | tail -1)"
}

main
