#!/usr/bin/env bash
# Soak: recommendations (48 connections) and event batches of 100 (4 connections) against the
# release server for $DURATION, sampling the server's resident memory every $SAMPLE seconds.
#
#   bash benches/soak.sh                      # DURATION=600 (seconds) SAMPLE=30 by default
#
# Prints RSS over time (start, every sample, end) and wrk's summaries.
DURATION="${DURATION:-600}"
SAMPLE="${SAMPLE:-30}"
SERVE_ARGS=()
source "$(dirname "$0")/serve_setup.sh"

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
  for i = 1, 100 do
    counter = counter + 1
    parts[i] = string.format('{"event_id":"soak-%s-%d","user_id":"u%d","item_id":"i%d","kind":"view"}',
      thread_id, counter, counter % 300, counter % 400)
  end
  return wrk.format(nil, "/v1/events", nil, '{"events":[' .. table.concat(parts, ",") .. ']}')
end
LUA

rss() { awk '/^VmRSS/ {print $2 " kB"}' "/proc/$SERVER/status"; }
echo "RSS at start (idle): $(rss)"
wrk -t1 -c48 -d"${DURATION}s" -s "$WORK/recs.lua" "http://127.0.0.1:$PORT" > "$WORK/recs.out" &
RECS=$!
wrk -t1 -c4 -d"${DURATION}s" -s "$WORK/events.lua" "http://127.0.0.1:$PORT" > "$WORK/events.out" &
EVENTS=$!
for t in $(seq "$SAMPLE" "$SAMPLE" "$DURATION"); do
    sleep "$SAMPLE"
    echo "RSS after ${t}s: $(rss)"
done
wait "$RECS" "$EVENTS"
echo "RSS at end: $(rss)"
echo "== recommendations"; cat "$WORK/recs.out"
echo "== events (batches of 100)"; cat "$WORK/events.out"
