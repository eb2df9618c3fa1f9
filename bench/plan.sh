#!/usr/bin/env bash
# Benchmark: `tidyplex plan` against a plain `find` walk of the same folder, in the same run.
#
#   bash bench/plan.sh [DIR] [RUNS]
#
# Builds the large fixture in DIR (default /tmp/tidyplex-bench; kept between runs), warms the
# cache, then times RUNS (default 3) alternating runs of `find`, `plan --stage 3` and
# `plan --bundles 3 --cache all`, and prints the best of each, the ratios (target: plan <= 1.0x
# find), plan's peak memory (target <= 300 MB) and the changeset sizes (target <= 30 MB).
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
    time_it stage3 "$bin" -q --plex-dir "$dir" plan --stage 3 -o "$out/stage3.yaml"
    time_it bundles "$bin" -q --plex-dir "$dir" plan --bundles 3 --cache all -o "$out/bundles.yaml"
done
python3 - "$out" "$files" <<'PY'
import os, sys
out, files = sys.argv[1], int(sys.argv[2])
best = {}
for line in open(os.path.join(out, "times")):
    name, secs, rss = line.split()
    t, m = best.get(name, (1e9, 0))
    best[name] = (min(t, float(secs)), max(m, int(rss)))
find = best["find"][0]
print(f"files in the fixture                  {files:,}")
print(f"find -printf '%s %T@'                 {find:.2f} s")
for name, label, yaml in [("stage3", "plan --stage 3", "stage3.yaml"), ("bundles", "plan --bundles 3 --cache all", "bundles.yaml")]:
    t, rss = best[name]
    size = os.path.getsize(os.path.join(out, yaml))
    print(f"{label:<37} {t:.2f} s  ratio {t / find:.2f}x (<= 1.0x)  peak {rss / 1024:.0f} MB (<= 300)  changeset {size / 1e6:.1f} MB (<= 30)")
PY
