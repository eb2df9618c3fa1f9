#!/usr/bin/env bash
# Benchmark: `tidyplex plan` against a plain `find` walk of the same folder, in the same run.
#
#   bash bench/plan.sh [DIR] [RUNS]
#
# Builds the large fixture in DIR (default /tmp/tidyplex-bench; kept between runs), warms the
# cache, then times RUNS (default 3) alternating runs of `find` and of the plan a user runs
# (`plan --stage 3 --bundles 3 --cache all`), and prints the best of each, the ratio (target:
# plan <= 1.0x find), plan's peak memory (target <= 300 MB), the changeset's size (target
# <= 30 MB) and lines, and the time and memory of `show --summary` and `diff` on it.
# Ratios, not absolute times, are what compare across machines.
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
find "$dir" -printf '%s %T@\n' > /dev/null # warm

# time_it NAME CMD…: appends "NAME seconds peak_kib" to $out/times
time_it() {
    local name=$1
    shift
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$out/rss" "$@" > /dev/null
    t1=$(date +%s.%N)
    echo "$name $(python3 -c "print($t1 - $t0)") $(cat "$out/rss")" >> "$out/times"
}
for _ in $(seq "$runs"); do
    time_it find find "$dir" -printf '%s %T@\n'
    time_it all "$bin" -q --plex-dir "$dir" plan --stage 3 --bundles 3 --cache all -o "$out/all.yaml"
done
# Reading it back: the summary, and a diff against a smaller plan of the same library.
"$bin" -q --plex-dir "$dir" plan --stage 2 --bundles 3 -o "$out/stage2.yaml" > /dev/null
time_it summary "$bin" -q show "$out/all.yaml" --summary
time_it diff "$bin" -q diff "$out/stage2.yaml" "$out/all.yaml"
python3 - "$out" "$files" <<'PY'
import os, sys
out, files = sys.argv[1], int(sys.argv[2])
best = {}
for line in open(os.path.join(out, "times")):
    name, secs, rss = line.split()
    t, m = best.get(name, (1e9, 0))
    best[name] = (min(t, float(secs)), max(m, int(rss)))
find = best["find"][0]
path = os.path.join(out, "all.yaml")
size = os.path.getsize(path)
lines = sum(1 for _ in open(path, "rb"))
t, rss = best["all"]
print(f"files in the fixture                          {files:,}")
print(f"find -printf '%s %T@'                         {find:.2f} s")
print(f"plan --stage 3 --bundles 3 --cache all        {t:.2f} s  ratio {t / find:.2f}x (<= 1.0x)  peak {rss / 1024:.0f} MB (<= 300)")
print(f"  its changeset                               {size / 1e6:.1f} MB (<= 30), {lines:,} lines")
t, rss = best["summary"]
print(f"show --summary of it                          {t:.2f} s  peak {rss / 1024:.0f} MB")
t, rss = best["diff"]
print(f"diff of it against a stage-2 plan             {t:.2f} s (<= 10)  peak {rss / 1024:.0f} MB (<= 500)")
PY
