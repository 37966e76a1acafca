#!/bin/sh
# bench_judge.sh BUILDDIR: 10,000 judgments against the fake judge server
# answering after 200 ms, at concurrency 64 (latency bound 31.25 s).
# BENCH_JUDGE_N / BENCH_JUDGE_SERVER (python|c) override the defaults.
B=${1:-.}
S=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_JUDGE_N:-10000}
T=$(mktemp -d "${TMPDIR:-/tmp}/bench-judge.XXXXXX")
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
trap 'kill $SP 2>/dev/null; wait $SP 2>/dev/null; rm -rf "$T"' EXIT
if [ "${BENCH_JUDGE_SERVER:-c}" = c ] && [ -x "$B/bench/bench_judge_server" ]; then
	"$B/bench/bench_judge_server" "$T/port" 0.2 &
else
	$PY "$S/tests/fake_llm_server.py" --port-file "$T/port" --latency 0.2 &
fi
SP=$!
i=0
while [ ! -s "$T/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ -s "$T/port" ] || { echo "bench_judge: the fake server did not start"; exit 1; }
DPO_DATADIR="$S/share" "$B/bench/bench_judge" "$B/dpo-judge" "$T/bench.db" \
	"http://127.0.0.1:$(cat "$T/port")/v1" "$N" 64 0.2
