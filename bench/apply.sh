#!/usr/bin/env bash
# Benchmark: `tidyplex apply` against plain deletion of the same files, in the same run.
#
#   [TRIGGERS=broad] bash bench/apply.sh [WORKDIR]
#
# Builds two identical large fixtures (same seed) in WORKDIR (default /tmp/tidyplex-bench-apply,
# removed afterwards), plans what a user runs (stage 3, bundles 3, the whole cache) on the
# first, and deletes exactly the same files and folders on the second with `xargs rm -rf`.
# On the first it then runs `apply --keep 7d`, `undo` (which puts the library back as it was)
# and the plain `apply` of the same changeset. Prints the deletion ratio of apply against rm
# (target: <= 1.0x), apply --keep against plain apply (target: <= 1.2x), undo's time, and
# the URL update rate (target: >= 20,000 per second uncontended).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/tidyplex-bench-apply}
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
bin=$PWD/target/release/tidyplex
echo "building two large fixtures …" >&2
"$bin" fixture "$work/a" --scale large --triggers "${TRIGGERS:-scoped}" >/dev/null
"$bin" fixture "$work/b" --scale large --triggers "${TRIGGERS:-scoped}" >/dev/null

"$bin" -q --plex-dir "$work/a" plan --stage 3 --bundles 3 --cache all -o "$work/plan.yaml" >/dev/null
"$bin" -q show "$work/plan.yaml" --json > "$work/plan.json"
python3 - "$work/plan.json" "$work/b" > "$work/paths" <<'PY'
import json, re, sys
cs = json.load(open(sys.argv[1]))
root = sys.argv[2]
hexdigest = re.compile(r"^[0-9a-fA-F]{64}$")
groups = [i.get("delete", {}) for i in cs.get("items", [])]
groups += [a.get("delete", {}) for a in cs.get("areas", {}).values()]
for group in groups:
    for folder, lines in group.items():
        for line in lines:
            if hexdigest.match(line.rsplit(" ", 1)[1]):
                rel = line.rsplit(" ", 3)[0].rstrip("/")
            else:
                rel = line[: -len(" shared")] if line.endswith(" shared") else line
                rel = rel.rsplit(" ", 2)[0]
            sys.stdout.write(f"{root}/{folder}/{rel}\0")
PY
# Warm both trees alike.
find "$work/a" "$work/b" -printf '%s %T@\n' >/dev/null

t0=$(date +%s.%N)
xargs -0 rm -rf -- < "$work/paths"
t1=$(date +%s.%N)
# timed NAME CMD…: wall seconds to $work/NAME.secs, peak KiB to $work/NAME.rss
timed() {
    local name=$1
    shift
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$work/$name.rss" "$@"
    t1=$(date +%s.%N)
    python3 -c "print($t1 - $t0)" > "$work/$name.secs"
}
timed keep "$bin" -q --plex-dir "$work/a" apply "$work/plan.yaml" --yes --json --keep 7d > "$work/keep.json"
timed undo "$bin" -q --plex-dir "$work/a" undo --yes --json > "$work/undo.json"
timed plain "$bin" -q --plex-dir "$work/a" apply "$work/plan.yaml" --yes --json > "$work/report.json"

python3 - "$work" "$t0" "$t1" <<'PY'
import json, os, sys
work = sys.argv[1]
rm = float(sys.argv[3]) - float(sys.argv[2])
load = lambda name: json.load(open(os.path.join(work, name + ".json")))
secs = lambda name: float(open(os.path.join(work, name + ".secs")).read())
rss = lambda name: int(open(os.path.join(work, name + ".rss")).read()) / 1024
r, k, u = load("report"), load("keep"), load("undo")
cs = json.load(open(os.path.join(work, "plan.json")))
urls = cs["summary"]["urls"]
print(f"files deleted             {r['files_deleted']:,} ({r['bytes_freed'] / 2**30:.1f} GiB apparent)")
print(f"xargs rm -rf (same set)   {rm:.2f} s")
print(f"apply: deletions          {r['files_seconds']:.2f} s   ratio {r['files_seconds'] / rm:.2f}x  (target <= 1.0x)")
print(f"apply: whole run          {secs('plain'):.2f} s   peak {rss('plain'):.0f} MB  (target <= 300 MB)")
print(f"apply --keep 7d           {secs('keep'):.2f} s   ratio {secs('keep') / secs('plain'):.2f}x plain apply (target <= 1.2x); "
      f"deletions {k['files_seconds']:.2f} s = {k['files_seconds'] / r['files_seconds']:.2f}x; peak {rss('keep'):.0f} MB")
print(f"undo of it                {secs('undo'):.2f} s   {u['restored']:,} columns, {u['files_restored']:,} files back; peak {rss('undo'):.0f} MB")
print(f"apply: URL updates        {urls:,} in {r['db_seconds']:.2f} s = {urls / r['db_seconds']:,.0f}/s  (target >= 20,000/s; {r['strategy']})")
PY
