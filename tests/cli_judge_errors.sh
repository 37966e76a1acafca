#!/bin/sh
# dpo-judge on errors: a non-retryable answer stops the run with the server's
# message; failed pairs are recorded and --retry-failed re-runs only them.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_judge_common.sh"
KEY=sk-fault-9b8c7d6e5f4a3b2c

# a bad key stops the run at the first answer, with the server's message
DB4=$T/k.db
"$DBTOOL" seed "$DB4" 5 3
start_server k --require-key sk-the-right-one
OPENAI_API_KEY=$KEY dpo-judge --db "$DB4" --model m --base-url "$URL" --concurrency 1 >"$T/k.out" 2>"$T/k.err"
is "401: exit 1" "$?" 1
like "401: the server's message is shown" "$(cat "$T/k.err")" "HTTP 401: Incorrect API key provided"
is "401: stopped after the first request" "$(nreq k)" 1
leak=0
for f in "$T/k.out" "$T/k.err" "$DB4" "$DB4-wal"; do [ -f "$f" ] && grep -a -q "$KEY" "$f" && leak=1; done
is "401: the key is not printed or stored" "$leak" 0
OPENAI_API_KEY=$KEY dpo-judge --db "$DB4" --model m --base-url "$URL" --concurrency 4 >/dev/null 2>&1
test "$(nreq k)" -le 5; is "401 at concurrency 4: at most the requests in flight were sent" "$?" 0
stop_server
start_server um --unknown-model no-such-model
dpo-judge --db "$DB4" --model no-such-model --base-url "$URL" --concurrency 1 >/dev/null 2>"$T/um.err"
is "unknown model: exit 1" "$?" 1
like "unknown model: the server's message" "$(cat "$T/um.err")" "model 'no-such-model' does not exist"
is "unknown model: nothing stored" "$("$DBTOOL" count "$DB4")" 0
stop_server

# failures after the retries are recorded; --retry-failed redoes only them
DB5=$T/rf.db
"$DBTOOL" seed "$DB5" 4 3
start_server rf --fault-first 500:3
dpo-judge --db "$DB5" --model m --base-url "$URL" --no-swap --concurrency 1 --max-retries 0 --json \
	>"$T/rf1.json" 2>"$T/rf1.err"
is "failures: exit 1 when pairs failed" "$?" 1
is "failures: 3 pairs failed" "$(jget "$T/rf1.json" failed_pairs)" 3
is "failures: 9 judged" "$(jget "$T/rf1.json" judged)" 9
like "failures: says how to retry" "$(cat "$T/rf1.err")" "--retry-failed"
before=$(nreq rf)
dpo-judge --db "$DB5" --model m --base-url "$URL" --no-swap --concurrency 1 --json >"$T/rf2.json" 2>/dev/null
is "failures: a plain rerun sends nothing" "$(nreq rf)" "$before"
dpo-judge --db "$DB5" --model m --base-url "$URL" --no-swap --concurrency 1 --retry-failed --json \
	>"$T/rf3.json" 2>/dev/null
is "--retry-failed: exit 0" "$?" 0
is "--retry-failed: the 3 failed pairs judged" "$(jget "$T/rf3.json" judged)" 3
is "--retry-failed: only 3 requests sent" "$(($(nreq rf) - before))" 3
is "--retry-failed: 12 decided comparisons, no skip left" \
	"$("$DBTOOL" dump "$DB5" | awk '$4 == "b"' | wc -l | tr -d ' ')/$("$DBTOOL" count "$DB5")" 12/12
stop_server

# well-formed JSON without an answer would come back the same: not retried
DB6=$T/na.db
"$DBTOOL" seed "$DB6" 2 2
start_server na --fault-first noanswer:1
dpo-judge --db "$DB6" --model m --base-url "$URL" --no-swap --concurrency 1 --json >"$T/na.json" 2>"$T/na.err"
is "no answer: 1 failed, 1 judged, no retry" \
	"$(jget "$T/na.json" failed_pairs)/$(jget "$T/na.json" judged)/$(jget "$T/na.json" retries)" 1/1/0
like "no answer: says why" "$(cat "$T/na.err")" "no string choices[0].message.content"
is "no answer: 2 requests" "$(nreq na)" 2
stop_server

done_testing
