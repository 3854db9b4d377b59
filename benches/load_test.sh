#!/usr/bin/env bash
# HTTP load test of `serve` (release build) on loopback with wrk (Debian package `wrk`):
# /healthz, /v1/recommendations for 300 rotating users (and for 300 the model does not know),
# the same through a placement with a
# filter, two boosts and diversity, and POST /v1/events in batches of 500, in the same run,
# 64 connections on 2 threads. The EASE model is trained on the demo store (DATASET=demo) or
# on ../shared/data/movielens-latest-small (DATASET=movielens, 9.7k items).
#
#   bash benches/load_test.sh                 # DURATION=15s CONNECTIONS=64 by default
#   DATASET=movielens bash benches/load_test.sh
#
# Prints wrk's summary (requests/s, latency percentiles), the server's CPU time and its
# involuntary context switches per request for each route, and recommendations/s as a share
# of healthz/s.
#
# wrk shares the two cores with the server. By default it runs under SCHED_BATCH
# (`chrt -b 0`, sched(7): its wake-ups do not preempt the running server thread; it still
# gets its fair share of the cores at the scheduler tick), so the run measures the server
# rather than where a co-located client's wake-ups land: under the normal policy, every
# response that wakes a wrk thread can preempt the server thread that wrote it in the middle
# of its next request, about one recommendation in four (one health check in twenty-five),
# which a client on another machine never does. LOADGEN_POLICY=other runs wrk under the
# normal policy instead; benches/README.md has both.
DURATION="${DURATION:-15s}"
CONNECTIONS="${CONNECTIONS:-64}"
LOADGEN_POLICY="${LOADGEN_POLICY:-batch}"
case "$LOADGEN_POLICY" in
    batch) LOADGEN=(chrt -b 0) ;;
    other) LOADGEN=() ;;
    *) echo "LOADGEN_POLICY must be batch or other, not '$LOADGEN_POLICY'" >&2; exit 2 ;;
esac
SERVE_ARGS=()
source "$(dirname "$0")/serve_setup.sh"
echo "== load generator: wrk under SCHED_${LOADGEN_POLICY^^} (LOADGEN_POLICY=$LOADGEN_POLICY)"

events_lua 500

# Server CPU per request: the server's user + system time (from /proc) over a wrk run,
# divided by the requests wrk counted. wrk shares the cores, and the recommendations run pays
# for its Lua request generator too, so this is the server's own cost per route. Involuntary
# context switches: summed over the server's threads, per request.
server_cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
involuntary() { cat /proc/"$SERVER"/task/*/status | awk '/^nonvoluntary_ctxt_switches/ {n += $2} END {print n}'; }
declare -A RATE
run() { # name, wrk arguments...
    local name=$1
    shift
    echo "== $name"
    local before after switched out requests
    before=$(server_cpu_ticks)
    switched=$(involuntary)
    out=$("${LOADGEN[@]}" wrk "$@")
    after=$(server_cpu_ticks)
    switched=$(($(involuntary) - switched))
    echo "$out"
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    RATE[$name]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" -v s="$switched" \
        'BEGIN { if (n > 0) printf "server CPU per request: %.1f µs; involuntary context switches per request: %.3f\n", t / hz / n * 1e6, s / n }'
}
# The placement: personal, without horror, comedies boosted 1.5× and the category of the
# user's latest item 2×, at most 3 items per category.
PLACEMENT_SPEC='{"strategy": "personal", "k": 10,
  "filter": "in_stock && !(genres contains \"Horror\")",
  "boosts": [{"when": "genres contains \"Comedy\"", "factor": 1.5},
             {"when": "category == user.last_category", "factor": 2}],
  "diversity": {"attribute": "category", "max_per_value": 3}}'
curl -sf -X PUT -H "Authorization: Bearer $ADMIN_KEY" -H "Content-Type: application/json" \
    -d "$PLACEMENT_SPEC" "http://127.0.0.1:$((PORT + 1))/v1/admin/placements/bench" > /dev/null
recs_lua "$WORK/placement.lua" "&placement=bench"
# The same requests for users the model does not know (cold start: trending items).
sed 's/user_id=" .. user/user_id=new-" .. user/' "$WORK/recs.lua" > "$WORK/strangers.lua"
echo "== dataset: $DATASET"
HEALTHZ="GET /healthz"
RECS="GET /v1/recommendations (300 users, k=10)"
PLACED="GET /v1/recommendations?placement=bench (filter, 2 boosts, diversity)"
run "$HEALTHZ" -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PORT/healthz"
run "$RECS" -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/recs.lua" "http://127.0.0.1:$PORT"
run "GET /v1/recommendations (300 users the model does not know)" -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/strangers.lua" "http://127.0.0.1:$PORT"
run "$PLACED" -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/placement.lua" "http://127.0.0.1:$PORT"
run "POST /v1/events (batches of 500; events/s = requests/s × 500)" \
    -t2 -c8 -d"$DURATION" --latency -s "$WORK/events.lua" "http://127.0.0.1:$PORT"
awk -v h="${RATE[$HEALTHZ]}" -v r="${RATE[$RECS]}" -v p="${RATE[$PLACED]}" \
    'BEGIN { if (h > 0) printf "== recommendations/s are %.1f %% of healthz/s; the placement %.1f %%\n", 100 * r / h, 100 * p / h }'
