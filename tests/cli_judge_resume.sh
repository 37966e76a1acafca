#!/bin/sh
# dpo-judge is crash-safe: kill -9 loses at most the requests in flight and
# a rerun judges only the remainder; Ctrl-C stops cleanly with status 130.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_judge_common.sh"

wait_count() { # DB N: wait until the DB holds at least N judge comparisons
	_i=0
	while [ "$("$DBTOOL" count "$1" 2>/dev/null || echo 0)" -lt "$2" ] && [ $_i -lt 200 ]; do
		sleep 0.05; _i=$((_i + 1))
	done
}

start_server s --latency 0.1
DB=$T/k.db
"$DBTOOL" seed "$DB" 20 3
dpo-judge --db "$DB" --model m --base-url "$URL" --no-swap --concurrency 4 -q >/dev/null 2>&1 &
JP=$!
wait_count "$DB" 12
kill -9 $JP
wait $JP 2>/dev/null
n1=$("$DBTOOL" count "$DB")
sent1=$(nreq s)
test "$n1" -ge 12 && test "$n1" -lt 60; is "kill -9 mid-run: some pairs saved ($n1 of 60)" "$?" 0
dpo-judge --db "$DB" --model m --base-url "$URL" --no-swap --concurrency 4 --json >"$T/r.json" 2>/dev/null
is "resume: exit 0" "$?" 0
is "resume judges only the remainder" "$(jget "$T/r.json" judged)" "$((60 - n1))"
is "resume: 60 comparisons, one per pair" \
	"$("$DBTOOL" dump "$DB" | awk '{print $1, $2, $3}' | sort -u | wc -l | tr -d ' ')/$("$DBTOOL" count "$DB")" 60/60
total=$(nreq s)
# lost at kill: the requests in flight (4) plus answers not yet committed
# (at most one 50 ms batch: 4 more at this latency)
test "$total" -le 68; is "kill -9 lost at most the requests in flight ($total requests for 60 pairs)" "$?" 0
test "$((total - sent1))" -le "$((60 - n1))"; is "resume sent no more than the remainder" "$?" 0

DB2=$T/i.db
"$DBTOOL" seed "$DB2" 20 3
dpo-judge --db "$DB2" --model m --base-url "$URL" --no-swap --concurrency 4 -q >"$T/i.out" 2>"$T/i.err" &
JP=$!
wait_count "$DB2" 8
kill -INT $JP
wait $JP
is "SIGINT: exit 130" "$?" 130
like "SIGINT: says how to resume" "$(cat "$T/i.err")" "run the same command again"
n2=$("$DBTOOL" count "$DB2")
dpo-judge --db "$DB2" --model m --base-url "$URL" --no-swap --concurrency 4 --json >"$T/i2.json" 2>/dev/null
is "after SIGINT the rerun judges the rest" "$(jget "$T/i2.json" judged)" "$((60 - n2))"
is "after SIGINT: 60 comparisons" "$("$DBTOOL" count "$DB2")" 60
stop_server

done_testing
