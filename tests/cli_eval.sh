#!/bin/sh
# dpo-eval: accuracy through a checker, KL by the sampled log-ratio, the win
# rate through dpo-judge (exec provider) with its Wilson interval, the store
# run, and errors.
. "$top_srcdir/tests/tap.sh"
V="$top_builddir/share/task/task-verify"
[ -x "$V" ] || skip_all "share/task/task-verify is not built"
P="$top_srcdir/tests/data/task/prompts.jsonl"
# a top-level field of dpo-eval's JSON (the best_of_n list set aside)
jget() { sed 's/,"best_of_n":\[[^]]*\]//' "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p"; }

# two random tiny models of the task (different seeds)
dpo-model init --config "$top_srcdir/share/task/config.json" --tokenizer "$top_srcdir/share/task" \
	--out "$T/m1" --seed 1 >/dev/null 2>&1
dpo-model init --config "$top_srcdir/share/task/config.json" --tokenizer "$top_srcdir/share/task" \
	--out "$T/m2" --seed 2 >/dev/null 2>&1
ok "two task models" test -f "$T/m1/model.safetensors" -a -f "$T/m2/model.safetensors"

# the checker itself
printf '{"prompt":"12345>","response":"54321"}\n{"prompt":"12345>","response":" 54321\\n"}\n{"prompt":"12345>","response":"5432"}\n{"prompt":"x","response":"x"}\n' >"$T/c.jsonl"
is "task-verify check" "$("$V" check <"$T/c.jsonl" | tr '\n' ' ')" "1 1 0 0 "
is "task-verify judge: only A right" "$(echo '{"prompt":"12345>","response_a":"54321","response_b":"1"}' | "$V" judge)" A
is "task-verify judge: only B right" "$(echo '{"prompt":"12345>","response_a":"5","response_b":"54321"}' | "$V" judge)" B
is "task-verify judge: both wrong" "$(echo '{"prompt":"12345>","response_a":"5","response_b":"4"}' | "$V" judge)" C
fails "task-verify judge: not a task prompt" sh -c "echo '{\"prompt\":\"hi\",\"response_a\":\"\",\"response_b\":\"\"}' | '$V' judge"

# the same model twice: identical samples, KL exactly 0
dpo-eval --policy "$T/m1" --baseline "$T/m1" --prompts "$P" --max-new-tokens 6 --samples 2 \
	--task-command "$V check" --json -q --threads 1 >"$T/same.json" 2>"$T/same.err"
is "same model: exit 0" "$?" 0
is "same model: 8 prompts" "$(jget "$T/same.json" prompts)" 8
is "same model: KL 0" "$(jget "$T/same.json" kl)" 0
is "same model: same accuracy" "$(jget "$T/same.json" accuracy_policy)" "$(jget "$T/same.json" accuracy_baseline)"
is "no judge: no win rate" "$(jget "$T/same.json" win_rate)" null

# a checker that calls everything right, and one that answers garbage
dpo-eval --policy "$T/m1" --baseline "$T/m2" --prompts "$P" --max-new-tokens 4 \
	--task-command "cat >/dev/null; yes 1 | head -n 8" --json -q --threads 1 >"$T/all.json" 2>/dev/null
is "checker says right: accuracy 1" "$(jget "$T/all.json" accuracy_policy)/$(jget "$T/all.json" accuracy_baseline)" 1/1
kl=$(jget "$T/all.json" kl)
ok "different models: KL is a number" awk -v k="$kl" 'BEGIN { exit !(k + 0 == k && k != 0) }'
dpo-eval --policy "$T/m1" --baseline "$T/m2" --prompts "$P" --max-new-tokens 4 \
	--task-command "cat >/dev/null; echo maybe" -q --threads 1 >/dev/null 2>"$T/bad.err"
is "garbage checker: exit 1" "$?" 1
like "garbage checker: says why" "$(cat "$T/bad.err")" "expected 1 or 0"

# the win rate through dpo-judge: a judge that always says tie gives 50%
# with the Wilson interval of 4 successes in 8
DB=$T/e.db
dpo-db --db "$DB" init >/dev/null 2>&1
dpo-db --db "$DB" import --format prompts --split test -q "$P" >/dev/null 2>&1
dpo-eval --db "$DB" --policy "$T/m1" --baseline "$T/m2" --split test --max-new-tokens 4 \
	--json -q --threads 1 -- --provider exec --command "cat >/dev/null; echo C" \
	--concurrency 2 >"$T/w.json" 2>"$T/w.err"
is "judged: exit 0" "$?" 0
is "judged: 8 ties" "$(jget "$T/w.json" ties)/$(jget "$T/w.json" wins)/$(jget "$T/w.json" losses)" 8/0/0
is "judged: win rate 0.5" "$(jget "$T/w.json" win_rate)" 0.5
is "judged: Wilson low" "$(jget "$T/w.json" win_rate_ci_low)" 0.215216
is "judged: Wilson high" "$(jget "$T/w.json" win_rate_ci_high)" 0.784784
is "judged: an eval run with its metrics in the store" \
	"$(sqlite3 "$DB" "select count(*) from runs r join metrics m on m.run_id = r.id where r.kind = 'eval' and m.name = 'eval/win_rate'")" 1
# the task verifier as the judge, greedy: deterministic, every pair decided or tied
dpo-eval --db "$DB" --policy "$T/m1" --baseline "$T/m2" --split test --max-new-tokens 6 --greedy \
	--task-command "$V check" --json -q --threads 1 -- --provider exec --command "$V judge" \
	>"$T/v.json" 2>"$T/v.err"
is "verifier judge: exit 0" "$?" 0
is "verifier judge: every prompt counted" \
	"$(($(jget "$T/v.json" wins) + $(jget "$T/v.json" losses) + $(jget "$T/v.json" ties)))" 8
# a failing judge fails the evaluation
fails "failing judge: exit non-zero" dpo-eval --db "$DB" --policy "$T/m2" --baseline "$T/m1" \
	--split test --max-new-tokens 3 -q --threads 1 -- --provider exec --command "exit 3" --max-retries 0

# best-of-N from the baseline's samples: a checker that calls only the first
# of every 4 samples right gives c = 1 of K = 4 on every prompt: accuracy
# 1 - C(3,N)/C(4,N) = 1/4, 1/2, 1 and KL q log(q/p) + (1-p)^N (N-1) log(1-p)
# with p = 1/4, q = 1 - (3/4)^N: 0, 0.0830107, 0.414556
dpo-eval --policy "$T/m1" --baseline "$T/m2" --prompts "$P" --max-new-tokens 4 --samples 4 \
	--task-command "awk '{ print (NR % 4 == 1) ? 1 : 0 }'" --json -q --threads 1 >"$T/bon.json" 2>/dev/null
like "best-of-N: N = 1, 2, 4 with their accuracy and KL" "$(cat "$T/bon.json")" \
	'"best_of_n":[{"n":1,"accuracy":0.25,"kl":0},{"n":2,"accuracy":0.5,"kl":0.0830107},{"n":4,"accuracy":1,"kl":0.414556}]'
is "best-of-N: the policy's beta is unknown for an untrained model" "$(jget "$T/bon.json" policy_beta)" null

# conversation prompts use the chat template (tiny-qwen3's ChatML), from a
# file and from the store; the checker sees the messages as the prompt
if have_shared; then
	Q="$DPO_SHARED/fixtures/tiny-qwen3/policy"
	printf '{"messages": [{"role": "user", "content": "Say hi"}]}\n{"prompt": "plain text"}\n' >"$T/chat.jsonl"
	dpo-eval --policy "$Q" --baseline "$Q" --prompts "$T/chat.jsonl" --max-new-tokens 3 --json -q \
		--threads 1 --task-command "cat >'$T/seen.jsonl'; yes 0 | head -n 2" >"$T/chat.json" 2>"$T/chat.err"
	is "conversation prompts from a file: exit 0" "$?" 0
	is "conversation prompts: same model, KL 0" "$(jget "$T/chat.json" kl)" 0
	like "the checker gets the messages" "$(head -1 "$T/seen.jsonl")" '{"prompt":[{"role":"user","content":"Say hi"}],'
	like "and plain text as text" "$(sed -n 2p "$T/seen.jsonl")" '{"prompt":"plain text",'
	CDB=$T/chat.db
	dpo-db --db "$CDB" import --format prompts --split test -q "$T/chat.jsonl" >/dev/null 2>&1
	dpo-eval --db "$CDB" --policy "$Q" --baseline "$Q" --split test --max-new-tokens 3 --json -q \
		--threads 1 >"$T/chatdb.json" 2>"$T/chatdb.err"
	is "conversation prompts from the store: exit 0" "$?" 0
	is "both prompts evaluated" "$(jget "$T/chatdb.json" prompts)" 2
fi

# usage errors
dpo-eval --policy "$T/m1" >/dev/null 2>&1
is "no --baseline: exit 2" "$?" 2
dpo-eval --policy "$T/m1" --baseline "$T/m1" --prompts "$P" -- --provider exec >/dev/null 2>&1
is "--prompts with judge options: exit 2" "$?" 2
dpo-eval --policy "$T/m1" --baseline "$T/m1" --samples 0 --prompts "$P" >/dev/null 2>&1
is "--samples 0: exit 2" "$?" 2
printf '{"prompt": "12345>"}\n{"text": 1}\n' >"$T/badp.jsonl"
dpo-eval --policy "$T/m1" --baseline "$T/m1" --prompts "$T/badp.jsonl" -q >/dev/null 2>"$T/bp.err"
is "bad prompt file: exit 1" "$?" 1
like "bad prompt file: names the line and field" "$(cat "$T/bp.err")" "badp.jsonl:2: field \"prompt\" must be a string or a list of messages"
dpo-eval --policy "$T/nope" --baseline "$T/m1" --prompts "$P" -q >/dev/null 2>"$T/nm.err"
is "missing model: exit 1" "$?" 1
ok "--help" dpo-eval --help
ok "--version" dpo-eval --version
done_testing
