#!/usr/bin/env bash
# What recording impressions costs the recommendation route: two `serve` processes (release)
# on the same store and model, one recording every answer as an impression (the default) and
# one started with --no-impressions, loaded in turn with wrk (GET /v1/recommendations for
# 300 rotating users, 64 connections on 2 threads, wrk under SCHED_BATCH as in
# load_test.sh), ROUNDS times each, alternating so that drift on the machine hits both alike.
# The store is the demo store and the model the first-start EASE model `serve` fits on it.
#
#   bash benches/impressions_load.sh            # DURATION=8s ROUNDS=3 by default
#
# Each server has a store and model folder of its own (the same demo store and first-start
# model): on a shared store the second would follow the first's impressions, as a replica
# does, and charge that work to the measurement of the first.
#
# Prints requests/s and p99 per run, what the recording server stored and dropped (from
# /metrics), and the ratio of the two medians. Needs wrk and curl.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/marquee/target}"
DURATION="${DURATION:-8s}"
ROUNDS="${ROUNDS:-3}"
PORT="${PORT:-18180}"
OFF_PORT=$((PORT + 2))
command -v wrk > /dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --quiet --release --bin serve
SERVE="$CARGO_TARGET_DIR/release/serve"
WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2> /dev/null || true; rm -rf "$WORK"' EXIT
start() { # port, name, extra arguments...
    local port=$1 name=$2
    shift 2
    mkdir -p "$WORK/$name"
    DATABASE_URL="sqlite://$WORK/$name/store.db" "$SERVE" --model "$WORK/$name/models/default" \
        --seed notebooks-data/demo-store --storefront-addr "127.0.0.1:$port" \
        --admin-addr "127.0.0.1:$((port + 1))" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
    PIDS+=($!)
    for _ in $(seq 600); do
        curl -sf "http://127.0.0.1:$port/readyz" > /dev/null && return
        sleep 0.1
    done
    echo "serve ($name) did not become ready:" >&2
    cat "$WORK/$name.err" >&2
    exit 1
}
start "$PORT" on
start "$OFF_PORT" off --no-impressions
USERS=$(tail -n +2 notebooks-data/demo-store/users.csv | head -300 | cut -d, -f1 | sed 's/.*/"&"/' | paste -sd,)
for name in on off; do
KEY=$(sed -n 's/^storefront key: //p' "$WORK/$name.out")
cat > "$WORK/recs-$name.lua" <<LUA
local users = {$USERS}
local requests = {}
local n = 0
wrk.headers["Authorization"] = "Bearer $KEY"
for i, user in ipairs(users) do
  requests[i] = wrk.format("GET", "/v1/recommendations?k=10&user_id=" .. user)
end
request = function()
  n = n + 1
  return requests[(n % #requests) + 1]
end
LUA
done
declare -A RATES
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # name, port, script
    local out rate p99 on0 off0
    on0=$(ticks "${PIDS[0]}")
    off0=$(ticks "${PIDS[1]}")
    out=$(chrt -b 0 wrk -t2 -c64 -d"$DURATION" --latency -s "$WORK/recs-$3.lua" "http://127.0.0.1:$2")
    grep -q "Non-2xx" <<< "$out" && { echo "$1: some answers were not 200:" >&2; echo "$out" >&2; exit 1; }
    rate=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
    p99=$(awk '$1 == "99%" {print $2}' <<< "$out")
    RATES[$1]+="$rate "
    echo "$1: $rate recommendations/s, p99 $p99; CPU ticks of the servers meanwhile: on $(($(ticks "${PIDS[0]}") - on0)), off $(($(ticks "${PIDS[1]}") - off0))"
}
for _ in $(seq "$ROUNDS"); do
    run impressions-on "$PORT" on
    run impressions-off "$OFF_PORT" off
done
sleep 1
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^marquee_impressions_(written|dropped)_total'
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
on=$(median <<< "${RATES[impressions-on]}")
off=$(median <<< "${RATES[impressions-off]}")
echo "median: on $on/s, off $off/s, on/off $(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.3f", a / b}')"
