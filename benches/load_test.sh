#!/usr/bin/env bash
# HTTP load test of `serve` (release build) on loopback with wrk (Debian package `wrk`):
# /healthz, /v1/recommendations for 300 rotating users, and POST /v1/events in batches of
# 500, in the same run, 64 connections on 2 threads. The model is trained on the demo store.
#
#   bash benches/load_test.sh                 # DURATION=15s CONNECTIONS=64 by default
#
# Prints wrk's summary (requests/s, latency percentiles) for each route.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/marquee/target}"
DURATION="${DURATION:-15s}"
CONNECTIONS="${CONNECTIONS:-64}"
PORT="${PORT:-18080}"
command -v wrk > /dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

# Setup tools (debug build: their speed is not measured) and the server (release).
cargo build --quiet --bin data --bin train
cargo build --quiet --release -p marquee-api --bin serve
WORK=$(mktemp -d)
export DATABASE_URL="sqlite://$WORK/store.db"
"$CARGO_TARGET_DIR/debug/data" import store notebooks-data/demo-store > /dev/null
(cd "$WORK" && "$CARGO_TARGET_DIR/debug/train" --config "$REPO/training/default.toml" \
    --set output_dir="$WORK/models" --set models=ease --set report=false > /dev/null)

"$CARGO_TARGET_DIR/release/serve" --model "$WORK/models/default" \
    --storefront-addr "127.0.0.1:$PORT" --admin-addr "127.0.0.1:$((PORT + 1))" \
    > "$WORK/serve.out" 2> "$WORK/serve.err" &
SERVER=$!
trap 'kill $SERVER 2> /dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && break
    sleep 0.1
done
KEY=$(sed -n 's/^storefront key: //p' "$WORK/serve.out")

# Rotate over the demo store's first 300 users.
USERS=$(tail -n +2 notebooks-data/demo-store/users.csv | head -300 | cut -d, -f1 | sed 's/.*/"&"/' | paste -sd,)
cat > "$WORK/recs.lua" <<LUA
local users = {$USERS}
local n = 0
wrk.headers["Authorization"] = "Bearer $KEY"
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/recommendations?k=10&user_id=" .. users[(n % #users) + 1])
end
LUA
cat > "$WORK/events.lua" <<LUA
local counter = 0
local thread_id = tostring(math.random(1, 1000000000))
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $KEY"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local parts = {}
  for i = 1, 500 do
    counter = counter + 1
    parts[i] = string.format('{"event_id":"load-%s-%d","user_id":"u%d","item_id":"i%d","kind":"view"}',
      thread_id, counter, counter % 300, counter % 400)
  end
  return wrk.format(nil, "/v1/events", nil, '{"events":[' .. table.concat(parts, ",") .. ']}')
end
LUA

echo "== GET /healthz"
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PORT/healthz"
echo "== GET /v1/recommendations (300 users, k=10)"
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/recs.lua" "http://127.0.0.1:$PORT"
echo "== POST /v1/events (batches of 500; events/s = requests/s × 500)"
wrk -t2 -c8 -d"$DURATION" --latency -s "$WORK/events.lua" "http://127.0.0.1:$PORT"
