#!/usr/bin/env bash
# Property-based API testing with schemathesis (PyPI) against the served /openapi.json:
# generated requests for every storefront and admin operation must never get a 5xx, and every
# answer must match the documented status codes, content types and schemas.
#
#   bash scripts/schemathesis.sh            # MAX_EXAMPLES=30 per operation by default
#
# Starts `serve` (debug build) on an empty throwaway store: it seeds the demo shop and fits a
# first model. schemathesis is installed into a throwaway virtualenv. The admin run leaves out
# the routes that start jobs or revoke keys (they would start the tools or lock the run out).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/marquee/target}"
MAX_EXAMPLES="${MAX_EXAMPLES:-30}"
PORT="${PORT:-19080}"
WORK=$(mktemp -d)
cleanup() {
    [ -n "${SERVER:-}" ] && kill "$SERVER" 2> /dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet schemathesis
cargo build --quiet --bin serve
DATABASE_URL="sqlite://$WORK/store.db" "$CARGO_TARGET_DIR/debug/serve" \
    --seed "$REPO/notebooks-data/demo-store" --model "$WORK/models/default" \
    --storefront-addr "127.0.0.1:$PORT" --admin-addr "127.0.0.1:$((PORT + 1))" \
    > "$WORK/serve.out" 2> "$WORK/serve.err" &
SERVER=$!
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null && break
    sleep 0.2
done
STOREFRONT_KEY=$(sed -n 's/^storefront key: //p' "$WORK/serve.out")
ADMIN_KEY=$(sed -n 's/^admin key: //p' "$WORK/serve.out")
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance

status=0
echo "== storefront API"
"$WORK/venv/bin/st" run "http://127.0.0.1:$PORT/openapi.json" --url "http://127.0.0.1:$PORT" \
    -H "Authorization: Bearer $STOREFRONT_KEY" -n "$MAX_EXAMPLES" -c "$CHECKS" \
    --include-path-regex '^/(v1/(recommendations|home|items|categories|orders|users|events)|healthz|readyz|metrics|openapi.json)' \
    || status=1
echo "== admin API"
"$WORK/venv/bin/st" run "http://127.0.0.1:$((PORT + 1))/openapi.json" --url "http://127.0.0.1:$((PORT + 1))" \
    -H "Authorization: Bearer $ADMIN_KEY" -n "$MAX_EXAMPLES" -c "$CHECKS" \
    --include-path-regex '^/v1/admin/' --exclude-path-regex 'jobs/retrain|segments/recompute|keys' \
    || status=1
if grep -q "panicked" "$WORK/serve.err"; then
    echo "serve panicked:" >&2
    grep -A3 "panicked" "$WORK/serve.err" >&2
    status=1
fi
exit $status
