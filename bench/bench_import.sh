#!/bin/sh
# bench_import.sh BUILDDIR: `dpo-db import` throughput on a generated 200k-pair
# TRL file, next to a Python standard-library import (json + sqlite3) of the
# same file run in the same invocation, and dpo-db's peak RSS at 50k and 200k
# pairs (memory must not grow with the file). Goal: >= 100k pairs/s and >= 2x
# the Python baseline. The same pairs as one JSON array (one element a line,
# as json.dump writes with a newline separator) are imported in the same
# run: pairs/s and peak RSS, which must stay flat too (the array is split as
# it streams, never loaded whole). Set BENCH_IMPORT_PAIRS to change the large
# size.
set -eu
build=${1:?usage: bench_import.sh BUILDDIR}
here=$(cd "$(dirname "$0")" && pwd)
dpodb=$build/dpo-db
py=${PYTHON:-python3}
big=${BENCH_IMPORT_PAIRS:-200000}
small=$((big / 4))
command -v "$py" >/dev/null 2>&1 || { echo "bench_import: $py not found, skipped"; exit 0; }
[ -x "$dpodb" ] || { echo "bench_import: $dpodb not built" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dpo-bench-import.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

"$py" "$here/bench_import.py" generate "$small" "$tmp/small.jsonl"
"$py" "$here/bench_import.py" generate "$big" "$tmp/big.jsonl"
# the same records as a JSON array: "[", the lines joined by ",", "]"
to_array() { { echo '['; sed '$!s/$/,/' "$1"; echo ']'; } >"$2"; }
to_array "$tmp/small.jsonl" "$tmp/small.json"
to_array "$tmp/big.jsonl" "$tmp/big.json"
echo "input: $big pairs, $(wc -c <"$tmp/big.jsonl") bytes (JSON Lines), $(wc -c <"$tmp/big.json") bytes (JSON array)"
sync # the inputs' writeback must not land inside the timed runs

# dpo-db: wall seconds and peak RSS of the process, fresh database each time
run_dpo() { # FILE DB -> "wall-seconds cpu-seconds peak-kib"
	rm -f "$2" "$2-wal" "$2-shm"
	"$py" "$here/bench_import.py" run "$dpodb" --db "$2" import --quiet "$1"
}
set -- $(run_dpo "$tmp/small.jsonl" "$tmp/s.db"); s_rss=$3
set -- $(run_dpo "$tmp/big.jsonl" "$tmp/b.db"); b_sec=$1 b_cpu=$2 b_rss=$3
c_rate=$(awk -v n="$big" -v t="$b_sec" 'BEGIN { printf "%.0f", n / t }')
c_crate=$(awk -v n="$big" -v t="$b_cpu" 'BEGIN { printf "%.0f", n / t }')
echo "dpo-db: $big pairs in $b_sec s ($b_cpu s CPU): $c_rate pairs/s, $c_crate pairs/CPU-s"
set -- $(run_dpo "$tmp/small.json" "$tmp/sa.db"); sa_rss=$3
set -- $(run_dpo "$tmp/big.json" "$tmp/ba.db"); a_sec=$1 a_cpu=$2 a_rss=$3
a_rate=$(awk -v n="$big" -v t="$a_sec" 'BEGIN { printf "%.0f", n / t }')
echo "dpo-db (JSON array): $big pairs in $a_sec s ($a_cpu s CPU): $a_rate pairs/s"

p_out=$("$py" "$here/bench_import.py" baseline "$tmp/big.jsonl" "$tmp/py.db")
echo "$p_out"
p_rate=$(echo "$p_out" | sed -n 's/.*: \([0-9]*\) pairs\/s, .*/\1/p')
p_crate=$(echo "$p_out" | sed -n 's/.*, \([0-9]*\) pairs\/CPU-s$/\1/p')

echo "peak RSS of dpo-db: $s_rss KiB at $small pairs, $b_rss KiB at $big pairs"
echo "peak RSS of dpo-db (JSON array): $sa_rss KiB at $small pairs, $a_rss KiB at $big pairs"
awk -v c="$c_rate" -v p="$p_rate" -v cc="$c_crate" -v pc="$p_crate" -v s="$s_rss" -v b="$b_rss" \
	-v a="$a_rate" -v sa="$sa_rss" -v ba="$a_rss" 'BEGIN {
	printf "ratio dpo-db / python: %.2fx wall, %.2fx CPU (goal >= 2x: %s)\n", c / p, cc / pc,
		(c / p >= 2) ? "met" : "NOT met"
	printf "dpo-db: %d pairs/s (goal >= 100000: %s)\n", c, (c >= 100000) ? "met" : "NOT met"
	printf "RSS growth from the small to the large file: %.2fx (flat: %s)\n", b / s, (b / s < 1.5) ? "yes" : "NO"
	printf "dpo-db (JSON array): %d pairs/s (goal >= 100000: %s)\n", a, (a >= 100000) ? "met" : "NOT met"
	printf "RSS growth from the small to the large JSON array: %.2fx (flat: %s)\n", ba / sa,
		(ba / sa < 1.5) ? "yes" : "NO"
}'
