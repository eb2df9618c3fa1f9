#!/usr/bin/env bash
# Benchmark: `tidyplex plan` against a plain `find` walk of the same folder, in the same run.
#
#   bash bench/plan.sh [DIR] [RUNS]
#
# Builds the large fixture in DIR (default /tmp/tidyplex-bench; kept between runs), warms the
# cache, then times RUNS (default 3) alternating runs of each and prints the best of each, their
# ratio (target: plan <= 1.0x find), plan's peak memory (target <= 300 MB) and the changeset
# size (target <= 30 MB). Ratios, not absolute times, are what compare across machines.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/tidyplex-bench}
runs=${2:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cargo build --release --quiet
bin=target/release/tidyplex
if [ ! -d "$dir" ]; then
    echo "building the large fixture in $dir …" >&2
    /usr/bin/time -f "fixture: %e s, peak %M KiB" "$bin" fixture "$dir" --scale large
fi
files=$(find "$dir" -not -type d | wc -l)

now() { date +%s.%N; }
best_find=999999
best_plan=999999
for i in $(seq "$runs"); do
    t0=$(now)
    find "$dir" -printf '%s %T@\n' > /dev/null
    t1=$(now)
    /usr/bin/time -f "%M" -o "$out/rss" "$bin" -q --plex-dir "$dir" plan --stage 3 -o "$out/plan.yaml" > /dev/null
    t2=$(now)
    best_find=$(python3 -c "print(min($best_find, $t1 - $t0))")
    best_plan=$(python3 -c "print(min($best_plan, $t2 - $t1))")
done
rss_kib=$(cat "$out/rss")
size=$(stat -c %s "$out/plan.yaml")
python3 - "$files" "$best_find" "$best_plan" "$rss_kib" "$size" <<'PY'
import sys
files, find, plan, rss, size = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print(f"files in the fixture      {files:,}")
print(f"find -printf '%s %T@'     {find:.2f} s")
print(f"tidyplex plan --stage 3   {plan:.2f} s   ratio {plan / find:.2f}x  (target <= 1.0x)")
print(f"plan peak memory          {rss / 1024:.0f} MB  (target <= 300 MB)")
print(f"changeset size            {size / 1e6:.1f} MB  (target <= 30 MB)")
PY
