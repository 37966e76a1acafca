#!/bin/sh
# bench_judge.sh BUILDDIR: dpo-judge against the fake judge server answering
# after 200 ms, at concurrency 64:
#   1. 10,000 judgments (latency bound 31.25 s);
#   2. HTTP/1.1 (--no-http2), 640 judgments (bound 2 s): the first requests
#      must all leave at once, or the ratio shows it;
#   3. a server that is down: dpo-judge must give up in under 5 s.
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
PORT=$(cat "$T/port")
rc=0
echo "== $N judgments"
DPO_DATADIR="$S/share" "$B/bench/bench_judge" "$B/dpo-judge" "$T/bench.db" \
	"http://127.0.0.1:$PORT/v1" "$N" 64 0.2 || rc=1
echo "== HTTP/1.1 (--no-http2), 640 judgments"
DPO_DATADIR="$S/share" "$B/bench/bench_judge" "$B/dpo-judge" "$T/bench11.db" \
	"http://127.0.0.1:$PORT/v1" 640 64 0.2 --no-http2 || rc=1
kill $SP 2>/dev/null; wait $SP 2>/dev/null
echo "== a server that is down (port $PORT closed)"
t0=$($PY -c 'import time; print(time.time())')
DPO_DATADIR="$S/share" "$B/dpo-judge" --db "$T/bench11.db" --model bench-down --base-url "http://127.0.0.1:$PORT/v1" \
	--concurrency 64 --quiet >/dev/null 2>"$T/down.err"
drc=$?
dt=$($PY -c "import time; print('%.2f' % (time.time() - $t0))")
$PY -c "import sys; sys.exit(0 if $dt < 5 else 1)" && met=met || { met=missed; rc=1; }
echo "exit $drc after $dt s (goal < 5 s: $met): $(cat "$T/down.err")"
exit $rc
