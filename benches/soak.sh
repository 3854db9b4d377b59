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

events_lua 100

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
