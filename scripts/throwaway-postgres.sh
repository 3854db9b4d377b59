# Starts a throwaway PostgreSQL server for the tests and points them at it. Source it:
#
#     source scripts/throwaway-postgres.sh && cargo test --workspace
#
# It installs PostgreSQL from Debian's packages when the machine has none (needs root or
# sudo), creates a cluster in a temporary folder (trust authentication, loopback only, a free
# port), exports MARQUEE_TEST_POSTGRES_URL and MARQUEE_REQUIRE_POSTGRES=1 for the test
# suites, and stops the server and deletes the folder when the shell that sourced it exits.

throwaway_postgres_bin() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$bin" ] && command -v initdb >/dev/null 2>&1; then
        bin=$(dirname "$(readlink -f "$(command -v initdb)")")
    fi
    echo "$bin"
}

PG_BIN=$(throwaway_postgres_bin)
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    echo "== installing PostgreSQL from Debian's packages"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    PG_BIN=$(throwaway_postgres_bin)
fi

PG_DIR=$(mktemp -d /tmp/marquee-pg.XXXXXX)
# initdb and postgres refuse to run as root: run them as the postgres account then.
PG_AS=()
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$PG_DIR" postgres
    chown postgres "$PG_DIR"
    PG_AS=(runuser -u postgres --)
fi
PG_PORT=55432
while (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null; do
    PG_PORT=$((PG_PORT + 1))
done
"${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >"$PG_DIR/initdb.log" 2>&1 || {
    cat "$PG_DIR/initdb.log" >&2
    return 1 2>/dev/null || exit 1
}
"${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null || {
    cat "$PG_DIR/server.log" >&2
    return 1 2>/dev/null || exit 1
}
throwaway_postgres_stop() {
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
}
trap throwaway_postgres_stop EXIT

export MARQUEE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
export MARQUEE_REQUIRE_POSTGRES=1
echo "== PostgreSQL $("$PG_BIN/postgres" --version | grep -o "[0-9][0-9.]*" | head -n 1) on 127.0.0.1:$PG_PORT (throwaway, $PG_DIR)"
