#!/bin/sh
# cli_gen_opts.sh: dpo-model (each command), dpo-generate and dpo-eval on
# the one option table, with the sampling options as one shared block
# (train/gen_cli.h): each --help, the range wording, unknown options and
# stray arguments (exit 2), dpo-eval's sampling options reaching its sampler,
# and defaults from the config file's [dpo-generate], [dpo-model generate]
# and [dpo-eval] sections used, then overridden by the command line.
. "$top_srcdir/tests/tap.sh"

# ---- --help of every program and command ----------------------------------------
for c in info tokenize detokenize score generate init import-llama2c; do
	dpo-model "$c" --help >"$T/help.out" 2>"$T/help.err"
	is "dpo-model $c --help exits 0" "$?" 0
	like "dpo-model $c --help: its own usage line" "$(head -n 1 "$T/help.out")" "Usage: dpo-model $c "
done
like "dpo-model --help: where the commands' defaults go" "$(dpo-model --help)" "[dpo-model COMMAND]"
for p in "dpo-model generate" dpo-generate dpo-eval; do
	$p --help >"$T/help.out" 2>"$T/help.err"
	is "$p --help exits 0" "$?" 0
	is "$p --help: nothing on stderr" "$(cat "$T/help.err")" ""
	like "$p --help: the sampling block" "$(cat "$T/help.out")" "--min-p P"
	like "$p --help: --stop" "$(cat "$T/help.out")" "--stop STR"
	like "$p --help: one --max-new-tokens default" "$(cat "$T/help.out")" \
		"at most N new tokens per completion (default 256)"
	like "$p --help: its config section" "$(cat "$T/help.out")" "[$p]"
done

# ---- usage errors: one wording, exit 2 ----------------------------------------------
usage_err() { # name want-first-line command...
	name=$1 want=$2
	shift 2
	"$@" >"$T/u.out" 2>"$T/u.err"
	is "$name: exit 2" "$?" 2
	is "$name: message" "$(head -n 1 "$T/u.err")" "$want"
	is "$name: nothing on stdout" "$(cat "$T/u.out")" ""
}
usage_err "dpo-model generate --temperature -1" \
	'dpo-model generate: --temperature: expected a number in (0, inf), got "-1"' \
	dpo-model generate "$T/none" --prompt-ids 1 --temperature -1
usage_err "dpo-generate --temperature -1" \
	'dpo-generate: --temperature: expected a number in (0, inf), got "-1"' \
	dpo-generate --model "$T/none" --temperature -1
usage_err "dpo-eval --temperature -1" \
	'dpo-eval: --temperature: expected a number in (0, inf), got "-1"' \
	dpo-eval --policy "$T/none" --baseline "$T/none" --temperature -1
usage_err "dpo-eval --min-p 1" 'dpo-eval: --min-p: expected a number in [0, 1), got "1"' \
	dpo-eval --policy "$T/none" --baseline "$T/none" --min-p 1
usage_err "dpo-eval --top-k -2" 'dpo-eval: --top-k: expected an integer in [0, inf), got "-2"' \
	dpo-eval --policy "$T/none" --baseline "$T/none" --top-k -2
usage_err "dpo-eval --stop ''" \
	'dpo-eval: --stop: expected a string, got "" (it would end every completion at once)' \
	dpo-eval --policy "$T/none" --baseline "$T/none" --stop ''
usage_err "dpo-generate --max-new-tokens 0" \
	'dpo-generate: --max-new-tokens: expected an integer in [1, 1048576], got "0"' \
	dpo-generate --model "$T/none" --max-new-tokens 0
usage_err "dpo-generate --chat-format vicuna" \
	'dpo-generate: --chat-format: expected one of chatml (or qwen), llama3, zephyr, llama2, mistral, got "vicuna"' \
	dpo-generate --model "$T/none" --chat-format vicuna
usage_err "dpo-model init --seed -1" 'dpo-model init: --seed: expected an integer in [0, inf), got "-1"' \
	dpo-model init --config x --out y --seed -1
usage_err "dpo-model generate: unknown option" 'dpo-model generate: unknown option --bogus' \
	dpo-model generate "$T/none" --prompt-ids 1 --bogus
usage_err "dpo-model info: unknown option" 'dpo-model info: unknown option --bogus' \
	dpo-model info "$T/none" --bogus
usage_err "dpo-model: unknown option before the command" 'dpo-model: unknown option --bogus' \
	dpo-model --bogus info "$T/none"
usage_err "dpo-generate: unknown option" 'dpo-generate: unknown option --bogus' \
	dpo-generate --model "$T/none" --bogus
usage_err "dpo-eval: unknown option" 'dpo-eval: unknown option --bogus' \
	dpo-eval --policy "$T/none" --baseline "$T/none" --bogus
usage_err "dpo-eval: an argument before --" \
	"dpo-eval: unexpected argument 'stray' (dpo-judge options go after --)" \
	dpo-eval --policy "$T/none" --baseline "$T/none" stray -- --provider exec
usage_err "dpo-generate: a stray argument" "dpo-generate: unexpected argument 'stray'" \
	dpo-generate --model "$T/none" stray
usage_err "dpo-model generate: --prompt and --prompt-ids" \
	'dpo-model generate: give --prompt TEXT or --prompt-ids IDS' \
	dpo-model generate "$T/none" --prompt-ids 1 --prompt x

# ---- two task models (no ../shared needed) -----------------------------------------
S=$top_srcdir/share/task
P=$top_srcdir/tests/data/task/prompts.jsonl
dpo-model init --config "$S/config.json" --tokenizer "$S" --out "$T/m1" --seed 1 >/dev/null 2>&1
ok "a task model" test -f "$T/m1/model.safetensors"

# ---- dpo-eval: the sampling options reach the sampler -------------------------------
# the checker keeps what it was given (the baseline's samples, the second run)
# (with the config file $CFG when set)
CFG=
ev() { # name options...: the samples into $T/name.jsonl, the results into $T/name.json
	name=$1
	shift
	DPO_CONFIG=$CFG dpo-eval --policy "$T/m1" --baseline "$T/m1" --prompts "$P" --max-new-tokens 6 --json -q \
		--threads 1 --task-command "tee '$T/$name.jsonl' | sed 's/.*/0/'" "$@" \
		>"$T/$name.json" 2>"$T/$name.err"
}
ev greedy --greedy
is "dpo-eval --greedy: exit 0" "$?" 0
ev sampled --seed 1
is "dpo-eval at temperature 1: exit 0" "$?" 0
fails "sampling at temperature 1 differs from --greedy" cmp -s "$T/greedy.jsonl" "$T/sampled.jsonl"
ev topk --top-k 1 --seed 1
is "dpo-eval --top-k 1: exit 0" "$?" 0
ok "--top-k 1 samples what --greedy does" cmp "$T/greedy.jsonl" "$T/topk.jsonl"
ev minp --min-p 0.99999 --seed 1
is "dpo-eval --min-p 0.99999: exit 0" "$?" 0
ok "--min-p 0.99999 samples what --greedy does" cmp "$T/greedy.jsonl" "$T/minp.jsonl"
ev topp --top-p 0.000001 --seed 1
ok "--top-p 0.000001 samples what --greedy does" cmp "$T/greedy.jsonl" "$T/topp.jsonl"
n_gt() { grep -c '"response":"[^"]*>' "$1"; }
ok "--greedy: some responses hold a '>'" test "$(n_gt "$T/greedy.jsonl")" -gt 0
ev stop --greedy --stop '>'
is "dpo-eval --stop: exit 0" "$?" 0
is "--stop '>': every response is cut before its '>'" "$(n_gt "$T/stop.jsonl")" 0
is "--stop: the same samples up to the stop string" \
	"$(sed 's/"response":"\([^">]*\).*/\1/' "$T/greedy.jsonl")" \
	"$(sed 's/"response":"\([^">]*\).*/\1/' "$T/stop.jsonl")"

# ---- config defaults: used, then overridden -----------------------------------------
printf '[dpo-eval]\nsamples = 2\ntop-k = 1\n' >"$T/eval.config"
CFG=$T/eval.config
ev cfg --seed 1
is "dpo-eval with [dpo-eval] defaults: exit 0" "$?" 0
is "[dpo-eval] samples = 2: used" "$(sed -n 's/.*"samples":\([0-9]*\).*/\1/p' "$T/cfg.json")" 2
is "[dpo-eval] top-k = 1: greedy's samples, each twice" "$(wc -l <"$T/cfg.jsonl")" 16
is "[dpo-eval] top-k = 1: the first sample of each prompt is greedy's" \
	"$(awk 'NR % 2 == 1' "$T/cfg.jsonl")" "$(cat "$T/greedy.jsonl")"
ev over --seed 1 --samples 1 --top-k 0
is "dpo-eval overriding them: exit 0" "$?" 0
CFG=
is "--samples 1 overrides the config" "$(sed -n 's/.*"samples":\([0-9]*\).*/\1/p' "$T/over.json")" 1
ok "--top-k 0 overrides the config: sampled again" cmp "$T/sampled.jsonl" "$T/over.jsonl"
DPO_CONFIG=$T/eval.config dpo-eval --help >"$T/cfghelp.out" 2>&1
like "dpo-eval --help shows the config's default" "$(cat "$T/cfghelp.out")" \
	"samples per prompt and model (default 2, from $T/eval.config)"

printf '[dpo-model generate]\nmax-new-tokens = 3\n' >"$T/model.config"
out=$(DPO_CONFIG=$T/model.config dpo-model generate "$T/m1" --prompt-ids 1,2 --json)
like "[dpo-model generate] max-new-tokens = 3: used" "$out" '"n_tokens":3,"finish_reason":"length"'
out=$(DPO_CONFIG=$T/model.config dpo-model generate "$T/m1" --prompt-ids 1,2 --max-new-tokens 5 --json)
like "--max-new-tokens 5 overrides it" "$out" '"n_tokens":5,"finish_reason":"length"'
ok "the section is generate's alone: dpo-model info reads none of it" \
	env DPO_CONFIG="$T/model.config" dpo-model info "$T/m1"

DB=$T/g.db
dpo-db --db "$DB" import --format prompts -q "$P" >/dev/null 2>&1
printf '[dpo-generate]\nmax-new-tokens = 3\nn = 1\n' >"$T/gen.config"
out=$(DPO_CONFIG=$T/gen.config dpo-generate --db "$DB" --model "$T/m1" --limit 2 --json 2>/dev/null)
like "[dpo-generate] n = 1: one completion per prompt" "$out" '"prompts_done":2,"completions_stored":2'
like "[dpo-generate] max-new-tokens = 3: 3 tokens each" "$out" '"tokens":6,'
out=$(DPO_CONFIG=$T/gen.config dpo-generate --db "$DB" --model "$T/m1" --limit 2 --max-new-tokens 5 \
	--json 2>/dev/null)
like "--max-new-tokens 5 overrides it (a new generator)" "$out" '"completions_stored":2,"duplicates":0'
like "5 tokens each" "$out" '"tokens":10,'
if command -v sqlite3 >/dev/null 2>&1; then
	is "the generators' identities hold the max-new-tokens used" \
		"$(sqlite3 "$DB" "select params like '%\"max_new_tokens\":3,%', params like '%\"max_new_tokens\":5,%' from generators order by id" | tr '\n' ' ')" \
		"1|0 0|1 "
	is "the run records its options" \
		"$(sqlite3 "$DB" "select params from runs where kind = 'generate' order by id limit 1")" \
		"$(printf '{"model": "%s", "n": 1, "limit": 2, "batch": 4, "temperature": 1, "top-k": 0, "top-p": 1, "min-p": 0, "seed": 0, "max-new-tokens": 3, "precision": "f32", "fingerprint": "%s"}' \
			"$T/m1" "$(dpo-model info --json "$T/m1" | sed 's/.*"fingerprint":"\([0-9a-f]*\)".*/\1/')")"
else
	echo "# sqlite3 not installed: generator identities not read"
fi
# #12: the generator's name is printed with its control characters escaped
dpo-generate --db "$DB" --model "$T/m1" --limit 1 --max-new-tokens 2 --n 1 --name "$(printf 'gen\033[2J')" \
	>"$T/gen-evil.out" 2>"$T/gen-evil.err"
is "generate --name with an escape: no ESC byte" "$(cat "$T/gen-evil.out" "$T/gen-evil.err" | grep -c "$(printf '\033')")" 0
like "generate --name with an escape: written as \\x1b" "$(cat "$T/gen-evil.out")" '(gen\x1b[2J)'
done_testing
