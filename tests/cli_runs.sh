#!/bin/sh
# cli_runs.sh: the run lifecycle end to end. A dpo-judge killed with kill -9
# mid-run leaves its run "running", and dpo-db check and stats report it as
# interrupted (its process is gone); a caught SIGINT ends the run
# interrupted itself; a dpo-eval that fails through util_die leaves a failed
# run, not a running one; the recorded command line hides a URL's password.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_judge_common.sh"
have_sqlite() { command -v sqlite3 >/dev/null 2>&1; }
skip_n() { # N REASON: N cases skipped
	_k=0
	while [ $_k -lt "$1" ]; do
		_k=$((_k + 1)); _tap_n=$((_tap_n + 1))
		echo "ok $_tap_n # SKIP $2"
	done
}

# the "runs" member of dpo-db stats --json
runs_json() {
	dpo-db --db "$1" stats --json | sed -n 's/.*"runs": {\(.*\)}, "position_bias".*/\1/p'
}

# wait_running DB: until a run of DB reads running (at most 10 s)
wait_running() {
	_i=0
	while ! runs_json "$1" | grep -q '"running": 1' && [ $_i -lt 200 ]; do
		sleep 0.05; _i=$((_i + 1))
	done
}

# ---- kill -9: the run reads interrupted -------------------------------------------
start_server slow --latency 2
DB=$T/k.db
"$DBTOOL" seed "$DB" 20 3
MYKEY=sk-never-stored dpo-judge --db "$DB" --model m --base-url "http://alice:pa55word@127.0.0.1:$PORT/v1" \
	--api-key-env MYKEY --no-swap --concurrency 1 -q >/dev/null 2>&1 &
JP=$!
wait_running "$DB"
is "while dpo-judge works, its run reads running" "$(runs_json "$DB")" \
	'"by_status": {"ok": 0, "failed": 0, "interrupted": 0, "running": 1}, "abandoned": 0, "unchecked": 0'
kill -9 $JP
wait $JP 2>/dev/null
is "after kill -9 stats --json counts it interrupted (abandoned)" "$(runs_json "$DB")" \
	'"by_status": {"ok": 0, "failed": 0, "interrupted": 1, "running": 0}, "abandoned": 1, "unchecked": 0'
dpo-db --db "$DB" stats >"$T/stats.txt"
like "stats text: runs by status" "$(cat "$T/stats.txt")" "runs: 0 ok, 0 failed, 1 interrupted, 0 running"
like "stats text: says the process is gone" "$(cat "$T/stats.txt")" \
	'1 interrupted: left "running" by a process that is gone'
ok "check passes (an abandoned run is no damage)" dpo-db --db "$DB" check
like "check says interrupted" "$(dpo-db --db "$DB" check)" \
	'runs interrupted: 1 left "running" by a process that is gone (run 1)'
if have_sqlite; then
	is "the row itself stays as the killed process left it" \
		"$(sqlite3 "$DB" "select status, ended_at is null, pid = $JP, host is not null from runs")" "running|1|1|1"
	cmd=$(sqlite3 "$DB" "select command from runs where id = 1")
	like "the command names the program" "$cmd" "dpo-judge --db"
	like "the URL's password is masked" "$cmd" "--base-url 'http://alice:***@127.0.0.1:$PORT/v1'"
	case "$cmd" in *pa55word* | *sk-never-stored*) r=1 ;; *) r=0 ;; esac
	is "no secret in the command" "$r" 0
	like "the name of the key's variable is kept" "$cmd" "--api-key-env MYKEY"
else
	skip_n 5 "sqlite3 is not installed"
fi

# ---- SIGINT: the program ends its run interrupted itself --------------------------
DB2=$T/i.db
"$DBTOOL" seed "$DB2" 20 3
dpo-judge --db "$DB2" --model m --base-url "$URL" --no-swap --concurrency 1 -q >/dev/null 2>&1 &
JP=$!
wait_running "$DB2"
kill -INT $JP
wait $JP
is "SIGINT: exit 130" "$?" 130
is "SIGINT: the run ended interrupted, not abandoned" "$(runs_json "$DB2")" \
	'"by_status": {"ok": 0, "failed": 0, "interrupted": 1, "running": 0}, "abandoned": 0, "unchecked": 0'
stop_server

# ---- a failing dpo-eval (util_die) ends its run failed -------------------------------
# (the models come from the repository's task files: a failed init fails here)
ok "task model 1" dpo-model init --config "$top_srcdir/share/task/config.json" --tokenizer "$top_srcdir/share/task" \
	--out "$T/m1" --seed 1
ok "task model 2" dpo-model init --config "$top_srcdir/share/task/config.json" --tokenizer "$top_srcdir/share/task" \
	--out "$T/m2" --seed 2
E=$T/e.db
dpo-db --db "$E" import --format prompts --split test -q "$top_srcdir/tests/data/task/prompts.jsonl" \
	>/dev/null 2>&1
dpo-eval --db "$E" --policy "$T/m2" --baseline "$T/m1" --split test --max-new-tokens 3 -q --threads 1 \
	-- --provider exec --command "exit 3" --max-retries 0 >/dev/null 2>"$T/e.err"
is "failing dpo-eval: exit 1" "$?" 1
like "it says why" "$(cat "$T/e.err")" "exited with status"
like "no run is left running" "$(runs_json "$E")" '"running": 0}, "abandoned": 0'
if have_sqlite; then
	is "the eval run is failed, with an end time" \
		"$(sqlite3 "$E" "select status, ended_at is not null from runs where kind = 'eval'")" "failed|1"
else
	skip_n 1 "sqlite3 is not installed"
fi

done_testing
