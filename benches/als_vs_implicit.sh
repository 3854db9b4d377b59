#!/usr/bin/env bash
# ALS fit time and quality: this project against the `implicit` Python library, on the same
# train split, with the same factors (64), iterations (15), regularization and alpha, on the
# same machine, in the same run. `implicit` is installed from PyPI into a throwaway venv.
#
#   bash benches/als_vs_implicit.sh            # MovieLens latest-small, ~1M sparse generated pairs, MovieLens-1M's dense shape
#   LARGE=1 bash benches/als_vs_implicit.sh    # and 200k users x 50k items, ~20M pairs (tens of minutes)
#   RUNS=5 ALS_REG=20 ALS_ALPHA=2 bash benches/als_vs_implicit.sh
#
# Needs python3 with venv and network access to PyPI. Results go to stdout as a table and to
# $OUT/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/marquee/target}"
RUNS="${RUNS:-3}"
export ALS_REG="${ALS_REG:-20}" ALS_ALPHA="${ALS_ALPHA:-2}"
OUT="${OUT:-$(mktemp -d)}"
VENV="$OUT/venv"

python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check implicit
# implicit's own advice: one BLAS thread, its own threads across users.
export OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

cargo build --release --quiet -p marquee-benches --bin als-fit
ALS="$CARGO_TARGET_DIR/release/als-fit"

: > "$OUT/results.jsonl"
run() {
    local name="$1" kind="$2" arg="$3"
    mkdir -p "$OUT/$name"
    local ours theirs
    ours=$("$ALS" "$kind" "$arg" "$OUT/$name" "$RUNS")
    theirs=$("$VENV/bin/python" benches/als_implicit.py "$OUT/$name" 64 15 "$ALS_REG" "$ALS_ALPHA" "$RUNS")
    echo "{\"data\": \"$name\", \"marquee\": $ours, \"implicit\": $theirs}" >> "$OUT/results.jsonl"
}
run movielens movielens ../shared/data/movielens-latest-small/ratings.csv
run generated-1m generated 1000000
# MovieLens-1M's shape: 6,040 users x 3,706 items, ~780k training pairs (~130 per user).
run dense-ml1m dense 1600000
# The large shape (LARGE=1): 200,000 users x 50,000 items, ~20M distinct pairs.
if [ "${LARGE:-0}" = 1 ]; then
    run large-20m large 25000000
fi

"$VENV/bin/python" - "$OUT/results.jsonl" <<'PY'
import json, statistics, sys
print(f"{'data':<14}{'library':<16}{'median fit s':>13}{'nDCG@10':>9}{'recall@10':>10}")
for line in open(sys.argv[1]):
    r = json.loads(line)
    times = {}
    for lib in ("marquee", "implicit"):
        x = r[lib]
        times[lib] = statistics.median(x["fit_seconds"])
        print(f"{r['data']:<14}{x['library']:<16}{times[lib]:>13.3f}{x['ndcg_at_10']:>9.4f}{x['recall_at_10']:>10.4f}")
    print(f"{'':<14}{'ratio':<16}{times['marquee'] / times['implicit']:>13.2f}")
PY
echo "raw results: $OUT/results.jsonl"
