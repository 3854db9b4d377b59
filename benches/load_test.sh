#!/usr/bin/env bash
# HTTP load test of `serve` (release build) on loopback with wrk (Debian package `wrk`):
# /healthz, /v1/recommendations for 300 rotating users, and POST /v1/events in batches of
# 500, in the same run, 64 connections on 2 threads. The model is trained on the demo store.
#
#   bash benches/load_test.sh                 # DURATION=15s CONNECTIONS=64 by default
#
# Prints wrk's summary (requests/s, latency percentiles) and the server's CPU time per
# request for each route.
DURATION="${DURATION:-15s}"
CONNECTIONS="${CONNECTIONS:-64}"
SERVE_ARGS=()
source "$(dirname "$0")/serve_setup.sh"

events_lua 500

# Server CPU per request: the server's user + system time (from /proc) over a wrk run,
# divided by the requests wrk counted. wrk shares the cores, and the recommendations run pays
# for its Lua request generator too, so this is the server's own cost per route.
server_cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
run() { # name, wrk arguments...
    local name=$1
    shift
    echo "== $name"
    local before after out requests
    before=$(server_cpu_ticks)
    out=$(wrk "$@")
    after=$(server_cpu_ticks)
    echo "$out"
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
        'BEGIN { if (n > 0) printf "server CPU per request: %.1f µs\n", t / hz / n * 1e6 }'
}
run "GET /healthz" -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PORT/healthz"
run "GET /v1/recommendations (300 users, k=10)" \
    -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/recs.lua" "http://127.0.0.1:$PORT"
run "POST /v1/events (batches of 500; events/s = requests/s × 500)" \
    -t2 -c8 -d"$DURATION" --latency -s "$WORK/events.lua" "http://127.0.0.1:$PORT"
