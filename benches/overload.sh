#!/usr/bin/env bash
# Overload: first measures what the box serves (wrk, 64 connections, GET /v1/recommendations),
# then offers twice that rate for $DURATION with oha (open loop: requests are sent on a
# schedule whether or not earlier ones were answered; `cargo install oha` if missing) over
# up to 1,024 connections. Latency degrades; the errors must be clean `503 overloaded`
# answers (the server sheds what exceeds --max-in-flight) and nothing else.
#
#   bash benches/overload.sh                  # DURATION=20s FACTOR=2 by default
DURATION="${DURATION:-20s}"
FACTOR="${FACTOR:-2}"
SERVE_ARGS=()
source "$(dirname "$0")/serve_setup.sh"
command -v oha > /dev/null || cargo install oha --locked

echo "== capacity: GET /v1/recommendations, 64 connections, 15 s"
wrk -t2 -c64 -d15s --latency -s "$WORK/recs.lua" "http://127.0.0.1:$PORT" | tee "$WORK/capacity.out"
CAPACITY=$(awk '/^Requests\/sec/ {printf "%d", $2}' "$WORK/capacity.out")
RATE=$((CAPACITY * FACTOR))
echo "== offered: $RATE requests/s (${FACTOR}x) for $DURATION, open loop, up to 1,024 connections"
oha --no-tui -z "$DURATION" -q "$RATE" -c 1024 --latency-correction \
    -H "Authorization: Bearer $KEY" \
    --rand-regex-url "http://127.0.0.1:$PORT/v1/recommendations\?k=10&user_id=u[0-9]{1,2}"
echo "== the server's own count of answers by status (from /metrics)"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^marquee_http_requests_total\{.*recommendations"' || true
