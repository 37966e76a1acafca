#!/bin/sh
# cli_model_generate.sh: dpo-generate over a store (needs ../shared for a
# model with a tokenizer; skipped, saying so, when it is absent).
. "$top_srcdir/tests/tap.sh"

dpo-generate >/dev/null 2>&1; is "no --model: exit 2" "$?" 2
dpo-generate --model x --n 0 >/dev/null 2>&1; is "--n 0: exit 2" "$?" 2
ok "--help" dpo-generate --help
if ! have_shared; then
	echo "# SKIP: \$DPO_SHARED ($DPO_SHARED) absent: no model with a tokenizer"
	done_testing
fi
M="$DPO_SHARED/fixtures/tiny-qwen3/policy"
P="$top_srcdir/share/examples/prompts.jsonl"
ok "import prompts" dpo-db --db "$T/a.db" import "$P"
ok "import prompts again (second db)" dpo-db --db "$T/b.db" import "$P"
run() { dpo-generate --model "$M" --max-new-tokens 6 --seed 4 --temperature 1.0 --json "$@" 2>/dev/null; }
out=$(run --db "$T/a.db" --n 2 --limit 3)
like "2 completions for 3 prompts" "$out" '"prompts_done":3,"completions_stored":6,"duplicates":0'
out=$(run --db "$T/a.db" --n 2 --limit 3)
like "rerun: nothing left to do" "$out" '"prompts_pending":0,"prompts_done":0'
out=$(run --db "$T/a.db" --n 3 --limit 3)
like "--n 3: one more each" "$out" '"prompts_done":3,"completions_stored":3'
dpo-db --db "$T/q.db" import "$P" >/dev/null 2>&1
dpo-generate --model "$M" --max-new-tokens 2 --db "$T/q.db" --n 1 --limit 1 -q >/dev/null 2>"$T/q.err"
is "-q: accepted, exit 0" "$?" 0
is "-q: nothing on stderr" "$(cat "$T/q.err")" ""
b=$(run --db "$T/b.db" --n 1 --batch 4 | sed 's/"seconds".*//')
like "conversational prompts too (all 8 done in b)" "$b" '"prompts_pending":8,"prompts_done":8'
# a had 3 prompts with completions; b is fresh, so compare b with a third db
ok "import prompts (third db)" dpo-db --db "$T/c.db" import "$P"
c=$(run --db "$T/c.db" --n 1 --batch 2 | sed 's/"seconds".*//')
is "same seed, same counts and tokens (batch 4 vs 2)" "$c" "$b"
if command -v sqlite3 >/dev/null 2>&1; then
	q='select prompt_id, text from completions order by prompt_id, text'
	is "same seed, same completion texts (batch 4 vs 2)" \
		"$(sqlite3 "$T/c.db" "$q")" "$(sqlite3 "$T/b.db" "$q")"
else
	echo "# sqlite3 not installed: completion texts not compared"
fi
out=$(dpo-generate --db "$T/c.db" --model "$M" --greedy --n 2 --max-new-tokens 8 --limit 1 --json 2>"$T/err")
like "greedy --n 2 stores duplicates once" "$out" '"duplicates":'
like "greedy --n 2 warns" "$(cat "$T/err")" "identical completions"
# Ctrl-C: exit 130 promptly, nothing of the prompt in flight stored, resumable
ok "import prompts (fourth db)" dpo-db --db "$T/d.db" import "$P"
dpo-generate --db "$T/d.db" --model "$M" --n 50 --max-new-tokens 120 --json >"$T/int.out" 2>"$T/int.err" &
pid=$!
sleep 1
kill -INT "$pid"
wait "$pid"; rc=$?
is "SIGINT: exit 130" "$rc" 130
like "SIGINT: says how to resume" "$(cat "$T/int.err")" "rerun the same command to resume"
like "SIGINT: the summary is printed" "$(cat "$T/int.out")" '"prompts_pending":8'
out=$(run --db "$T/d.db" --n 1 --limit 2)
like "after SIGINT: a rerun goes on" "$out" '"prompts_done":'
dpo-generate --db "$T/a.db" --model "$T/nomodel" --n 1 >/dev/null 2>"$T/err"; rc=$?
is "missing model: exit 1" "$rc" 1
done_testing
