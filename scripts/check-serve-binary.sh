#!/usr/bin/env bash
# Gate on the artifact: builds `serve` the way README's first command does (a release build
# from the workspace root, so cargo unifies features across every member) and fails if the
# binary links polars, burn or linfa, or grows past the size limit.
#
#   bash scripts/check-serve-binary.sh            # build, then check
#   SERVE_MAX_MB=40 bash scripts/check-serve-binary.sh
#
# It looks at the binary's symbol table (demangled names of the crates' functions) and at the
# source paths panics embed (…/polars-core-0.55.0/src/…): either would be there if any code of
# those crates were compiled in. The release profile strips debug info but keeps symbols, so
# the symbol table is there to read.
set -euo pipefail
cd "$(dirname "$0")/.."

max_mb="${SERVE_MAX_MB:-40}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked --bin serve
bin="$target/release/serve"
[ -f "$bin" ] || { echo "no binary at $bin" >&2; exit 1; }

heavy='(polars|burn|linfa)[a-z0-9_]*'
symbols=$(nm -C --defined-only "$bin" 2>/dev/null | grep -cE "\\b${heavy}::" || true)
paths=$(strings -n 8 "$bin" | grep -cE "/${heavy//_/-}-[0-9]+\.[0-9]+" || true)
bytes=$(stat -c %s "$bin")
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
total_symbols=$(nm --defined-only "$bin" 2>/dev/null | wc -l)
echo "serve: $mb MB, $total_symbols symbols, $symbols polars/burn/linfa symbols, $paths polars/burn/linfa source paths"
if [ "$total_symbols" -eq 0 ]; then
    echo "serve has no symbol table to check: keep the release profile from stripping symbols" >&2
    exit 1
fi
if [ "$symbols" -ne 0 ] || [ "$paths" -ne 0 ]; then
    echo "serve links polars, burn or linfa (DESIGN.md: they stay in the CLI's crates):" >&2
    nm -C --defined-only "$bin" | grep -E "\\b${heavy}::" | head -n 5 >&2 || true
    strings -n 8 "$bin" | grep -E "/${heavy//_/-}-[0-9]+\.[0-9]+" | head -n 5 >&2 || true
    exit 1
fi
if [ "$bytes" -gt $((max_mb * 1048576)) ]; then
    echo "serve is $mb MB, over the $max_mb MB limit" >&2
    exit 1
fi
