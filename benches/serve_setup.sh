# Sourced by the load scripts in this folder: builds the tools (debug: their speed is not
# measured) and `serve` (release), imports the demo store (DATASET=demo, the default) or
# ../shared/data/movielens-latest-small (DATASET=movielens) into a temporary SQLite file, trains
# an EASE model on it (MODELS=sasrec another kind; TRAIN_SET="--set k=v ..." more settings; and
# a second version when SECOND_VERSION=1; MODEL_DIR=PATH serves a model trained beforehand), starts `serve` on $PORT
# (admin on $PORT+1), and sets SERVER (its pid), WORK, KEY, ADMIN_KEY, USERS (300 demo users,
# quoted, comma-separated, for Lua) and MODEL. It writes the wrk scripts $WORK/recs.lua
# (GET /v1/recommendations over the 300 users) and, through `events_lua N`,
# $WORK/events.lua (POST /v1/events in batches of N). The server stops and WORK goes when the script
# exits. Needs wrk (Debian package `wrk`) and curl.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/marquee/target}"
PORT="${PORT:-18080}"
command -v wrk > /dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

cargo build --quiet --bin data --bin train
# SERVE_PROFILE=profiling builds the same code with line tables, for perf (benches/README.md).
SERVE_PROFILE="${SERVE_PROFILE:-release}"
cargo build --quiet --profile "$SERVE_PROFILE" -p marquee-api --bin serve
WORK=$(mktemp -d)
export DATABASE_URL="sqlite://$WORK/store.db"
DATASET="${DATASET:-demo}"
case "$DATASET" in
    demo)
        "$CARGO_TARGET_DIR/debug/data" import store notebooks-data/demo-store > /dev/null
        USERS=$(tail -n +2 notebooks-data/demo-store/users.csv | head -300 | cut -d, -f1 | sed 's/.*/"&"/' | paste -sd,)
        ;;
    movielens)
        MOVIELENS="$REPO/../shared/data/movielens-latest-small"
        "$CARGO_TARGET_DIR/debug/data" import movielens "$MOVIELENS" > /dev/null
        USERS=$(tail -n +2 "$MOVIELENS/ratings.csv" | cut -d, -f1 | uniq | head -300 | sed 's/.*/"&"/' | paste -sd,)
        ;;
    *) echo "DATASET must be demo or movielens, not '$DATASET'" >&2; exit 2 ;;
esac
train_version() {
    (cd "$WORK" && "$CARGO_TARGET_DIR/debug/train" --config "$REPO/training/default.toml" \
        --set output_dir="$WORK/models" --set models="${MODELS:-ease}" --set report=false \
        ${TRAIN_SET:-} "$@" > /dev/null)
}
if [ -n "${MODEL_DIR:-}" ]; then
    # A model trained beforehand on the same data set (e.g. a SASRec fit that takes minutes).
    MODEL="$MODEL_DIR"
else
    train_version
    if [ "${SECOND_VERSION:-0}" = 1 ]; then
        sleep 1 # versions are named by time
        train_version --set ease.lambda=50
    fi
    MODEL="$WORK/models/default"
fi

"$CARGO_TARGET_DIR/$SERVE_PROFILE/serve" --model "$MODEL" \
    --storefront-addr "127.0.0.1:$PORT" --admin-addr "127.0.0.1:$((PORT + 1))" \
    "${SERVE_ARGS[@]}" > "$WORK/serve.out" 2> "$WORK/serve.err" &
SERVER=$!
trap 'kill $SERVER 2> /dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && break
    sleep 0.1
done
KEY=$(sed -n 's/^storefront key: //p' "$WORK/serve.out")
ADMIN_KEY=$(sed -n 's/^admin key: //p' "$WORK/serve.out")

# The 300 requests are formatted once per wrk thread and handed out in turn: wrk's scripting
# guide advises pre-generating requests, as building one per call costs the load generator
# CPU that it shares with the server on this machine (and /healthz, without a script, pays
# none).
# recs_lua FILE [QUERY]: GET /v1/recommendations over the users, QUERY appended.
recs_lua() {
    cat > "$1" <<LUA
local users = {$USERS}
local requests = {}
local n = 0
wrk.headers["Authorization"] = "Bearer $KEY"
for i, user in ipairs(users) do
  requests[i] = wrk.format("GET", "/v1/recommendations?k=10&user_id=" .. user .. "${2:-}")
end
request = function()
  n = n + 1
  return requests[(n % #requests) + 1]
end
LUA
}
recs_lua "$WORK/recs.lua"
events_lua() {
    cat > "$WORK/events.lua" <<LUA
local counter = 0
local thread_id = tostring(math.random(1, 1000000000))
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $KEY"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local parts = {}
  for i = 1, $1 do
    counter = counter + 1
    parts[i] = string.format('{"event_id":"load-%s-%d","user_id":"u%d","item_id":"i%d","kind":"view"}',
      thread_id, counter, counter % 300, counter % 400)
  end
  return wrk.format(nil, "/v1/events", nil, '{"events":[' .. table.concat(parts, ",") .. ']}')
end
LUA
}
