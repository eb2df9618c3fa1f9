#!/usr/bin/env bash
# Benchmark: `tidyplex plan` and `status` against a plain `find` walk of the same folder, in
# the same run, at three library sizes.
#
#   bash bench/plan.sh [DIR] [RUNS] [MOVIES…]
#
# For each size (default 5000 20000 60000 movies: about 250 k, 1 M and 3 M files) builds the
# fixture in DIR/<movies> (default DIR /tmp/tidyplex-bench; kept between runs), warms the
# cache, then times RUNS (default 3) alternating runs of `find -printf '%s %T@'`, of the plan a
# user runs (`plan --stage 3 --bundles 3 --cache all`) and of `status`, and prints the best of
# each: seconds, ratio to find (targets: plan <= 0.8x, status <= 0.8x), microseconds per file
# (the 3 M figure within 1.1x of the 1 M one) and peak memory (target: <= 200 MB at 1 M). On the
# 1 M fixture it also prints the changeset's size and the time of `show --summary` and `diff`.
# Ratios, not absolute times, are what compare across machines.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/tidyplex-bench}
runs=${2:-3}
shift $(( $# > 2 ? 2 : $# ))
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(5000 20000 60000)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cargo build --release --quiet
bin=$PWD/target/release/tidyplex

# time_it NAME CMD…: appends "NAME seconds peak_kib" to $out/times (and stderr, so that an
# interrupted run keeps its figures)
time_it() {
    local name=$1
    shift
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$out/rss" "$@" > /dev/null
    t1=$(date +%s.%N)
    echo "$name $(python3 -c "print($t1 - $t0)") $(cat "$out/rss")" | tee -a "$out/times" >&2
}

for movies in "${sizes[@]}"; do
    fx=$dir/$movies
    if [ ! -d "$fx" ]; then
        echo "building the $movies-movie fixture in $fx …" >&2
        mkdir -p "$dir"
        /usr/bin/time -f "fixture $movies: %e s, peak %M KiB" "$bin" fixture "$fx" --scale "$movies" > /dev/null
    fi
    files=$(find "$fx" -not -type d | wc -l)
    echo "files $movies $files" >> "$out/files"
    find "$fx" -printf '%s %T@\n' > /dev/null # warm
    for _ in $(seq "$runs"); do
        time_it "find-$movies" find "$fx" -printf '%s %T@\n'
        time_it "plan-$movies" "$bin" -q --plex-dir "$fx" plan --stage 3 --bundles 3 --cache all -o "$out/all-$movies.yaml"
        time_it "status-$movies" "$bin" -q --plex-dir "$fx" status
    done
    if [ "$movies" = 20000 ]; then
        "$bin" -q --plex-dir "$fx" plan --stage 2 --bundles 3 -o "$out/stage2.yaml" > /dev/null
        time_it summary "$bin" -q show "$out/all-$movies.yaml" --summary
        time_it diff "$bin" -q diff "$out/stage2.yaml" "$out/all-$movies.yaml"
        cp "$out/all-$movies.yaml" "$out/large.yaml"
    fi
done

python3 - "$out" <<'PY'
import os, sys
out = sys.argv[1]
best = {}
for line in open(os.path.join(out, "times")):
    name, secs, rss = line.split()
    t, m = best.get(name, (1e9, 0))
    best[name] = (min(t, float(secs)), max(m, int(rss)))
files = {}
for line in open(os.path.join(out, "files")):
    _, movies, n = line.split()
    files[movies] = int(n)
print(f"{'movies':>7} {'files':>10}  {'find':>7}  {'plan':>7} {'ratio':>6} {'µs/file':>8} {'peak':>7}  {'status':>7} {'ratio':>6} {'peak':>7}")
per_file = {}
for movies, n in files.items():
    find = best[f"find-{movies}"][0]
    p, prss = best[f"plan-{movies}"]
    s, srss = best[f"status-{movies}"]
    per_file[movies] = p / n * 1e6
    print(f"{movies:>7} {n:>10,}  {find:>6.2f}s  {p:>6.2f}s {p / find:>5.2f}x {p / n * 1e6:>8.2f} {prss / 1024:>5.0f}MB  {s:>6.2f}s {s / find:>5.2f}x {srss / 1024:>5.0f}MB")
if "20000" in per_file and "60000" in per_file:
    print(f"time per file, 3 M against 1 M: {per_file['60000'] / per_file['20000']:.2f}x (<= 1.1x)")
large = os.path.join(out, "large.yaml")
if os.path.exists(large):
    size = os.path.getsize(large)
    lines = sum(1 for _ in open(large, "rb"))
    print(f"1 M plan's changeset: {size / 1e6:.1f} MB (<= 30), {lines:,} lines")
    t, rss = best["summary"]
    print(f"show --summary of it: {t:.2f} s, peak {rss / 1024:.0f} MB")
    t, rss = best["diff"]
    print(f"diff of it against a stage-2 plan: {t:.2f} s (<= 10), peak {rss / 1024:.0f} MB (<= 500)")
PY
