#!/usr/bin/env bash
# Model swaps under load: wrk sends GET /v1/recommendations (300 rotating users, 64
# connections) for $DURATION while the admin API activates the two trained versions in turn
# every $EVERY seconds. Every answer is checked: status 200 and a `model_version` naming one of
# the two versions.
#
#   bash benches/swap_under_load.sh           # DURATION=30s EVERY=0.5 by default
#
# Prints the requests, the failures (non-200 or no version) and the activations.
DURATION="${DURATION:-30s}"
EVERY="${EVERY:-0.5}"
CONNECTIONS="${CONNECTIONS:-64}"
SECOND_VERSION=1
SERVE_ARGS=()
source "$(dirname "$0")/serve_setup.sh"

VERSIONS=($(ls "$MODEL" | grep -v -e '^latest$' -e '^active$' | sort))
[ "${#VERSIONS[@]}" -eq 2 ] || { echo "expected two versions in $MODEL: ${VERSIONS[*]}" >&2; exit 1; }
cat > "$WORK/swap.lua" <<LUA
local users = {$USERS}
local n = 0
local threads = {}
bad_status, no_version, answers = 0, 0, 0
wrk.headers["Authorization"] = "Bearer $KEY"
function setup(thread) table.insert(threads, thread) end
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/recommendations?k=10&user_id=" .. users[(n % #users) + 1])
end
response = function(status, headers, body)
  answers = answers + 1
  if status ~= 200 then bad_status = bad_status + 1 end
  if not (body:find('"model_version":"${VERSIONS[0]}"', 1, true)
          or body:find('"model_version":"${VERSIONS[1]}"', 1, true)) then
    no_version = no_version + 1
  end
end
function done(summary, latency, requests)
  local a, b, v = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("answers"); b = b + t:get("bad_status"); v = v + t:get("no_version")
  end
  io.write(string.format("answers checked: %d, non-200: %d, without a known model_version: %d\n", a, b, v))
  io.write(string.format("socket errors: connect %d, read %d, write %d, timeout %d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
LUA

(
    i=0
    while kill -0 "$SERVER" 2> /dev/null; do
        v=${VERSIONS[$((i % 2))]}
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $ADMIN_KEY" \
            "http://127.0.0.1:$((PORT + 1))/v1/admin/models/$v/activate")
        echo "$code" >> "$WORK/activations"
        i=$((i + 1))
        sleep "$EVERY"
    done
) &
SWAPPER=$!
echo "== GET /v1/recommendations while ${VERSIONS[0]} and ${VERSIONS[1]} are activated in turn every ${EVERY}s"
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/swap.lua" "http://127.0.0.1:$PORT"
kill "$SWAPPER" 2> /dev/null || true
wait "$SWAPPER" 2> /dev/null || true
echo "activations: $(grep -c '^200$' "$WORK/activations") succeeded, $(grep -vc '^200$' "$WORK/activations") failed"
