#!/bin/sh
# dpo-judge under faults: nothing lost or doubled, Retry-After honoured.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_judge_common.sh"
KEY=sk-fault-9b8c7d6e5f4a3b2c

# random faults of every kind on about 30% of the requests
DB=$T/f.db
"$DBTOOL" seed "$DB" 10 3
start_server f1 --seed 7 --retry-after 0.05 --slow 1 \
	--faults 429:0.06,500:0.04,503:0.03,529:0.04,reset:0.04,malformed:0.04,truncated:0.04,slow:0.03
OPENAI_API_KEY=$KEY dpo-judge --db "$DB" --model m --base-url "$URL" --timeout 0.5 --max-retries 20 --backoff 50 \
	--concurrency 8 --json >"$T/f1.json" 2>"$T/f1.err"
is "faults: run exits 0" "$?" 0
is "faults: all 30 pairs judged" "$(jget "$T/f1.json" judged)" 30
is "faults: no failed pair" "$(jget "$T/f1.json" failed_pairs)" 0
is "faults: exactly one comparison per pair" "$("$DBTOOL" dump "$DB" | awk '{print $1, $2, $3}' | sort -u | wc -l | tr -d ' ')" 30
is "faults: no extra comparison" "$("$DBTOOL" count "$DB")" 30
is "faults: every verdict right and consistent" "$("$DBTOOL" dump "$DB" | awk '$4 != "b" || $6 != 0' | wc -l | tr -d ' ')" 0
n=$(nreq f1); r=$(jget "$T/f1.json" retries)
test "$n" -gt 60; is "faults: retried ($n requests for 60 answers)" "$?" 0
# curl itself resends once when a reused connection is reset before any
# answer; since #15 those resends are counted as retries too
is "faults: extra requests ($((n - 60))) = counted retries ($r), curl's resends included" "$r" "$((n - 60))"
grep -q '"fault": "reset"' "$T/f1.log" && grep -q '"fault": "truncated"' "$T/f1.log" && grep -q '"fault": "slow"' "$T/f1.log"
is "faults: resets, truncated bodies and slow answers were injected" "$?" 0
stop_server

# Retry-After: the retry waits as long as the server asked
DB2=$T/ra.db
"$DBTOOL" seed "$DB2" 1 2
start_server ra --fault-first 429:1 --retry-after 1
dpo-judge --db "$DB2" --model m --base-url "$URL" --no-swap --concurrency 1 --json >"$T/ra.json" 2>/dev/null
is "Retry-After: judged after one retry" "$(jget "$T/ra.json" judged)/$(jget "$T/ra.json" retries)" 1/1
gap=$($PY -c 'import json,sys; t=[json.loads(l)["t"] for l in open(sys.argv[1])]; print(int((t[1]-t[0])*1000))' "$T/ra.log")
test "$gap" -ge 980 && test "$gap" -lt 3000; is "Retry-After: 1 honoured (retry after $gap ms)" "$?" 0
stop_server
DB3=$T/ram.db
"$DBTOOL" seed "$DB3" 1 2
start_server ram --fault-first 529:1 --retry-after-ms 400
dpo-judge --db "$DB3" --model m --base-url "$URL" --no-swap --concurrency 1 --json >"$T/ram.json" 2>/dev/null
gap=$($PY -c 'import json,sys; t=[json.loads(l)["t"] for l in open(sys.argv[1])]; print(int((t[1]-t[0])*1000))' "$T/ram.log")
test "$gap" -ge 390 && test "$gap" -lt 2000; is "retry-after-ms: 400 honoured on 529 (retry after $gap ms)" "$?" 0
stop_server

done_testing
