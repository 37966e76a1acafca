#!/bin/sh
# cli_train_opts.sh: dpo-train's command line on the one option table
# (util/opt.h): --help, range and choice errors in the one wording, an
# unknown option, the checks that combine options, and defaults from the
# config file's [dpo-train] section used (dpo_run.json's arguments), then
# overridden by the command line.
. "$top_srcdir/tests/tap.sh"
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMP_WAIT_POLICY

dpo-train --help >"$T/help.out" 2>"$T/help.err"
is "--help exits 0" $? 0
is "--help writes nothing to stderr" "$(cat "$T/help.err")" ""
like "--help: the usage line" "$(head -n 1 "$T/help.out")" "Usage: dpo-train (--from-db | --from-jsonl FILE)"
like "--help: the resume form" "$(cat "$T/help.out")" "dpo-train --resume CHECKPOINT --out DIR"
like "--help shows the table's defaults" "$(cat "$T/help.out")" "DPO temperature (default 0.1)"
like "--help: --batch-size's default" "$(cat "$T/help.out")" "pairs per micro-batch (default 8)"
like "--help: --beta-sweep" "$(cat "$T/help.out")" "--beta-sweep B1,B2,..."
like "--help keeps the exit-status line with 130" "$(cat "$T/help.out")" "130 interrupted"
like "--help names the config section" "$(cat "$T/help.out")" "[dpo-train]"

dpo-train --from-jsonl p.jsonl --model m --out o --beta abc >"$T/beta.out" 2>"$T/beta.err"
is "--beta abc exits 2" $? 2
is "range error in the one wording" "$(head -n 1 "$T/beta.err")" \
	'dpo-train: --beta: expected a number in (0, inf), got "abc"'
like "range error says where to look" "$(cat "$T/beta.err")" "Try 'dpo-train --help'"
is "a usage error prints nothing on stdout" "$(cat "$T/beta.out")" ""
dpo-train --from-jsonl p.jsonl --model m --out o --beta 0 2>"$T/err"
is "--beta 0 exits 2" $? 2
is "--beta 0 is out of range" "$(head -n 1 "$T/err")" 'dpo-train: --beta: expected a number in (0, inf), got "0"'
dpo-train --from-jsonl p.jsonl --model m --out o --label-smoothing 0.5 2>"$T/err"
is "--label-smoothing 0.5 exits 2" $? 2
is "--label-smoothing's range" "$(head -n 1 "$T/err")" \
	'dpo-train: --label-smoothing: expected a number in [0, 0.5), got "0.5"'
dpo-train --from-jsonl p.jsonl --model m --out o --batch-size 0 2>"$T/err"
is "--batch-size 0 exits 2" $? 2
is "--batch-size's range" "$(head -n 1 "$T/err")" \
	'dpo-train: --batch-size: expected an integer in [1, 1000000], got "0"'
dpo-train --from-jsonl p.jsonl --model m --out o --schedule steep 2>"$T/err"
is "--schedule steep exits 2" $? 2
is "--schedule names the choices" "$(head -n 1 "$T/err")" \
	'dpo-train: --schedule: expected one of constant, linear, cosine, got "steep"'
dpo-train --from-db --model m --out o --resolve vote 2>"$T/err"
is "--resolve vote exits 2" $? 2
like "--resolve names the choices" "$(head -n 1 "$T/err")" 'expected one of majority, humans-over-judges'
dpo-train --from-jsonl p.jsonl --model m --out o --loss nope 2>"$T/err"
is "--loss nope exits 2" $? 2
is "--loss names the losses" "$(head -n 1 "$T/err")" \
	'dpo-train: --loss: unknown loss "nope" (expected sigmoid, robust, hinge, ipo, sft, simpo; at most 8)'
dpo-train --from-jsonl p.jsonl --model m --out o --beta-sweep 0.1,-1 2>"$T/err"
is "--beta-sweep 0.1,-1 exits 2" $? 2
like "--beta-sweep says what it expected" "$(head -n 1 "$T/err")" "positive numbers separated by commas"

dpo-train --bogus >"$T/unknown.out" 2>"$T/unknown.err"
is "an unknown option exits 2" $? 2
is "an unknown option is named" "$(head -n 1 "$T/unknown.err")" "dpo-train: unknown option --bogus"
dpo-train --from-jsonl p.jsonl --model m --out o stray >/dev/null 2>&1
is "a positional argument exits 2" $? 2

# the checks that combine options
dpo-train --model m --out o 2>"$T/err"
is "no data exits 2" $? 2
is "no data says so" "$(head -n 1 "$T/err")" "dpo-train: give exactly one of --from-db and --from-jsonl FILE"
dpo-train --from-db --from-jsonl p.jsonl --model m --out o 2>"$T/err"
is "both data sources exit 2" $? 2
dpo-train --from-jsonl p.jsonl --out o 2>"$T/err"
is "no --model exits 2" $? 2
is "no --model says so" "$(head -n 1 "$T/err")" "dpo-train: --model DIR is required"
dpo-train --from-jsonl p.jsonl --model m --eval-split test --out o 2>"$T/err"
is "--eval-split without --from-db exits 2" $? 2
like "--eval-split says why" "$(head -n 1 "$T/err")" "--eval-split needs --from-db"
dpo-train --from-jsonl p.jsonl --model m --out o --loss sigmoid,sft --loss-weights 1 2>"$T/err"
is "--loss-weights of another count exits 2" $? 2
is "--loss-weights says how many" "$(head -n 1 "$T/err")" \
	"dpo-train: --loss-weights: expected 2 comma-separated numbers"
dpo-train --from-jsonl p.jsonl --out o --resume ck --beta-sweep 0.1,1 2>"$T/err"
is "--beta-sweep with --resume exits 2" $? 2
is "--beta-sweep with --resume says so" "$(head -n 1 "$T/err")" \
	"dpo-train: --beta-sweep and --resume do not go together"

# ---- the config file ---------------------------------------------------------------
printf '# train gently\n[dpo-train]\nbeta = 0.25\nbatch-size = 5\nloss = ipo\nno-append-eos = true\n[dpo]\nseed = 3\n' >"$T/config"
like "config: --help shows a default from the file" "$(DPO_CONFIG=$T/config dpo-train --help)" \
	"DPO temperature (default 0.25, from $T/config)"
printf '[dpo-train]\nbeta = -1\n' >"$T/bad"
DPO_CONFIG=$T/bad dpo-train --help >/dev/null 2>"$T/err"
is "config: a bad value exits 2" $? 2
is "config: a bad value names the file and line" "$(head -n 1 "$T/err")" \
	"dpo-train: $T/bad:2: beta: expected a number in (0, inf), got \"-1\""
printf '[dpo-train]\nloss = nope\n' >"$T/bad"
DPO_CONFIG=$T/bad dpo-train --help >/dev/null 2>"$T/err"
is "config: a bad loss exits 2" $? 2
like "config: ... names the file and line" "$(head -n 1 "$T/err")" "$T/bad:2: loss: unknown loss \"nope\""
printf '[dpo-train]\nresume = %s/ck\n' "$T" >"$T/bad"
DPO_CONFIG=$T/bad dpo-train --help >/dev/null 2>"$T/err"
is "config: --resume may not come from the file" $? 2
like "config: ... says so" "$(head -n 1 "$T/err")" "has no option 'resume' that a config file may set"

if have_shared; then
	cmp="$top_builddir/tests/test_trainer_cmp"
	fx="$DPO_SHARED/fixtures/tiny-llama"
	"$cmp" pairs "$fx/oracle.json" >"$T/p.jsonl"
	args() { tr -d ' \t\n' <"$1/dpo_run.json"; }
	DPO_CONFIG=$T/config dpo-train --from-jsonl "$T/p.jsonl" --model "$fx/policy" --steps 1 --quiet \
		--out "$T/c1"
	is "config: a run with the file's defaults exits 0" $? 0
	like "config: beta = 0.25 used" "$(args "$T/c1")" '"beta":0.25,'
	like "config: loss = ipo used" "$(args "$T/c1")" '"loss":"ipo",'
	like "config: batch-size = 5 used" "$(args "$T/c1")" '"batch_size":5,'
	like "config: no-append-eos = true used" "$(args "$T/c1")" '"append_eos":false,'
	like "config: [dpo] seed = 3 used" "$(args "$T/c1")" '"seed":3,'
	DPO_CONFIG=$T/config dpo-train --from-jsonl "$T/p.jsonl" --model "$fx/policy" --steps 1 --quiet \
		--beta 0.5 --loss sigmoid --seed 9 --out "$T/c2"
	is "config: a run overriding them exits 0" $? 0
	like "config: --beta 0.5 wins" "$(args "$T/c2")" '"beta":0.5,'
	like "config: --loss sigmoid wins" "$(args "$T/c2")" '"loss":"sigmoid",'
	like "config: --seed 9 wins" "$(args "$T/c2")" '"seed":9,'
	like "config: the rest still from the file" "$(args "$T/c2")" '"batch_size":5,'
	DPO_CONFIG= dpo-train --from-jsonl "$T/p.jsonl" --model "$fx/policy" --steps 1 --quiet --out "$T/c3"
	like "no config: the table's beta" "$(args "$T/c3")" '"beta":0.1,'
	like "no config: the table's batch size" "$(args "$T/c3")" '"batch_size":8,'
	like "no config: EOS appended" "$(args "$T/c3")" '"append_eos":true,'
	dpo-train --from-jsonl "$T/p.jsonl" --model "$fx/policy" --steps 1 --quiet --json --out "$T/c4" >"$T/c4.json"
	is "--json: exit 0" $? 0
	is "--json: stdout is dpo_run.json, one document" \
		"$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["status"], d["steps"])' "$T/c4.json")" "ok 1"
	is "--json: the same as the file" "$(cat "$T/c4.json")" "$(cat "$T/c4/dpo_run.json")"
	dpo-train --from-jsonl "$T/p.jsonl" --model "$fx/policy" --steps 1 --quiet --json --beta-sweep 0.1,0.2 \
		--out "$T/c5" >"$T/c5.json"
	is "--json --beta-sweep: exit 0" $? 0
	is "--json --beta-sweep: one document, the sweep's" \
		"$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["policies"]))' "$T/c5.json")" 2
fi
done_testing
