#!/usr/bin/env bash
# HTTP load test of `serve` (release build) on loopback with wrk (Debian package `wrk`):
# /healthz, /v1/recommendations for 300 rotating users, and POST /v1/events in batches of
# 500, in the same run, 64 connections on 2 threads. The model is trained on the demo store.
#
#   bash benches/load_test.sh                 # DURATION=15s CONNECTIONS=64 by default
#
# Prints wrk's summary (requests/s, latency percentiles) for each route.
DURATION="${DURATION:-15s}"
CONNECTIONS="${CONNECTIONS:-64}"
SERVE_ARGS=()
source "$(dirname "$0")/serve_setup.sh"

events_lua 500

echo "== GET /healthz"
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PORT/healthz"
echo "== GET /v1/recommendations (300 users, k=10)"
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/recs.lua" "http://127.0.0.1:$PORT"
echo "== POST /v1/events (batches of 500; events/s = requests/s × 500)"
wrk -t2 -c8 -d"$DURATION" --latency -s "$WORK/events.lua" "http://127.0.0.1:$PORT"
