#!/bin/sh
# dpo-judge --provider exec: a local verifier program per pair.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_judge_common.sh"
V="$PY $top_srcdir/tests/data/judge/verifier.py"

DB=$T/e.db
"$DBTOOL" seed "$DB" 2 2
dpo-judge --db "$DB" --provider exec --command "$V longer" --json >"$T/e1.json" 2>"$T/e1.err"
is "exec: exit 0" "$?" 0
is "exec: 2 pairs judged in both orders" "$(jget "$T/e1.json" judged)/$(jget "$T/e1.json" sent)" 2/4
is "exec: the longer wins, consistently" "$("$DBTOOL" dump "$DB" | awk '$4 != "b" || $6 != 0' | wc -l | tr -d ' ')" 0
dpo-judge --db "$DB" --provider exec --command "$V longer" --json >"$T/e2.json" 2>/dev/null
is "exec: rerun has nothing to do" "$(jget "$T/e2.json" pairs)" 0

DB2=$T/e2.db
"$DBTOOL" seed "$DB2" 2 2 conv
dpo-judge --db "$DB2" --provider exec --command "$V json" --no-swap --concurrency 2 --json >"$T/j.json" 2>"$T/j.err"
is "exec JSON verdicts: exit 0" "$?" 0
is "exec JSON verdicts: 2 judged" "$(jget "$T/j.json" judged)" 2
is "exec JSON verdicts: right" "$("$DBTOOL" dump "$DB2" | awk '$4 != "b"' | wc -l | tr -d ' ')" 0

DB3=$T/e3.db
"$DBTOOL" seed "$DB3" 1 3
dpo-judge --db "$DB3" --provider exec --command "cat >/dev/null; echo broke on purpose >&2; exit 3" --no-swap --json >"$T/f.json" 2>"$T/f.err"
is "failing verifier: exit 1" "$?" 1
is "failing verifier: 3 failed pairs" "$(jget "$T/f.json" failed_pairs)" 3
like "failing verifier: its stderr is shown" "$(cat "$T/f.err")" "exited with status 3: broke on purpose"
dpo-judge --db "$DB3" --provider exec --command "cat >/dev/null; echo maybe" --no-swap --json >"$T/g.json" 2>"$T/g.err"
is "verdicts that are not A/B/C fail the pair" "$(jget "$T/g.json" failed_pairs)" 3
like "and say what was printed" "$(cat "$T/g.err")" "the verifier printed \"maybe\"; expected A, B, C"
dpo-judge --db "$DB3" --provider exec --command "cat >/dev/null; echo broke on purpose >&2; exit 3" --no-swap --retry-failed --json >"$T/r.json" 2>/dev/null
is "--retry-failed retries only this verifier's 3 failures" "$(jget "$T/r.json" pairs)" 3
is "the 6 failures stay recorded as skips" "$("$DBTOOL" dump "$DB3" | awk '$4 == "skip"' | wc -l | tr -d ' ')" 6

DB4=$T/e4.db
"$DBTOOL" seed "$DB4" 1 2
dpo-judge --db "$DB4" --provider exec --command "sleep 5" --timeout 0.3 --no-swap --json >"$T/t.json" 2>"$T/t.err"
is "slow verifier: killed after --timeout, pair failed" "$(jget "$T/t.json" failed_pairs)" 1
dpo-judge --db "$DB4" --provider exec --command "/nonexistent/verifier" >/dev/null 2>"$T/n.err"
is "missing verifier: exit 1" "$?" 1
like "missing verifier: says so" "$(cat "$T/n.err")" "cannot run /nonexistent/verifier: No such file"
# a bare name goes through sh -c, which reports 127
dpo-judge --db "$DB4" --provider exec --command "no-such-verifier-here judge" >/dev/null 2>"$T/n2.err"
is "missing verifier by name: exit 1" "$?" 1
like "missing verifier by name: sh says 127" "$(cat "$T/n2.err")" "exited with status 127"
dpo-judge --db "$DB4" --provider exec --command "$V longer" --dry-run >"$T/d.out" 2>&1
like "exec dry run" "$(cat "$T/d.out")" "1 pairs, 2 requests to send"

done_testing
