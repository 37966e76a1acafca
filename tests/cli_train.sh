#!/bin/sh
# cli_train.sh: dpo-train's options and guarantees on the tiny fixtures:
# usage errors, bad data, gradient accumulation (== full batch), resume from
# a checkpoint (== the uninterrupted run, exactly), NaN stops with the last
# checkpoint intact, EOS/truncation, training from the store with the
# reference log-prob cache and the run's metrics recorded.
. "$top_srcdir/tests/tap.sh"
# Tiny models run many short parallel regions; on a busy machine libgomp's
# spinning idle threads cost more than the work itself.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMP_WAIT_POLICY
have_shared || skip_all "no ../shared fixtures"
cmp="$top_builddir/tests/test_trainer_cmp"
fx="$DPO_SHARED/fixtures/tiny-llama"
"$cmp" pairs "$fx/oracle.json" >"$T/p.jsonl"
base="--model $fx/policy --ref-model $fx/reference --beta 0.1 --lr 1e-3 --max-grad-norm 1 --schedule constant --no-append-eos --quiet"

# usage and data errors
dpo-train --from-jsonl "$T/p.jsonl" --model "$fx/policy" >/dev/null 2>&1
is "no --out: exit 2" "$?" 2
dpo-train --from-jsonl "$T/p.jsonl" --model "$fx/policy" --out "$T/x" --loss nope 2>"$T/err"
is "unknown loss: exit 2" "$?" 2
like "unknown loss named" "$(cat "$T/err")" '"nope"'
ok "--help" dpo-train --help
ok "--version" dpo-train --version
{ head -2 "$T/p.jsonl"; echo '{"prompt": "x", "chosen": 3, "rejected": "y"}'; } >"$T/bad.jsonl"
dpo-train --from-jsonl "$T/bad.jsonl" $base --out "$T/x" 2>"$T/err"
is "bad line: exit 1" "$?" 1
like "bad line named with its field" "$(cat "$T/err")" 'bad.jsonl:3: field "chosen" must be a string or a list of messages'

# gradient accumulation: 5 micro-batches of 1 pair == the full batch of adamw_run
ok "grad-accum run" dpo-train --from-jsonl "$T/p.jsonl" $base --batch-size 1 --grad-accum 5 \
	--steps 8 --log-json "$T/ga.log" --out "$T/ga"
ok "grad-accum reproduces adamw_run" "$cmp" log "$fx/oracle.json" "$T/ga.log"
ok "grad-accum final parameters" "$cmp" params "$fx/adamw_final_params.safetensors" "$T/ga/model.safetensors"

# resume: 2 pairs per step, shuffled epochs, linear schedule, weight decay
run="--from-jsonl $T/p.jsonl $base --batch-size 2 --steps 7 --schedule linear --warmup-steps 2 --weight-decay 0.1 --seed 7"
ok "uninterrupted run with checkpoints" dpo-train $run --save-every 3 --log-json "$T/a.log" --out "$T/a"
ok "checkpoint-6 is kept" test -s "$T/a/checkpoint-6/model.safetensors" -a -s "$T/a/checkpoint-6/optimizer.bin"
ok "checkpoint-3 was superseded" test ! -e "$T/a/checkpoint-3"
ok "no temporary checkpoint left" test -z "$(ls -A "$T/a" | grep '^\.')"
ok "resume from checkpoint-6" dpo-train $run --resume "$T/a/checkpoint-6" --log-json "$T/b.log" --out "$T/b"
ok "resumed steps equal the uninterrupted run" "$cmp" same "$T/a.log" "$T/b.log"
ok "resumed final model equals the uninterrupted one" cmp "$T/a/model.safetensors" "$T/b/model.safetensors"
dpo-train $run --steps 9 --resume "$T/a/checkpoint-6" --out "$T/c" 2>"$T/err"
is "resume with another step count: exit 1" "$?" 1
like "says why" "$(cat "$T/err")" "run of 7 steps"

# --resume refuses other options than the checkpoint's, naming each, unless --force (#17)
dpo-train $run --lr 2e-3 --beta 0.2 --resume "$T/a/checkpoint-6" --out "$T/r2" 2>"$T/err"
is "resume with another --lr and --beta: exit 1" "$?" 1
like "names both" "$(cat "$T/err")" \
	"the checkpoint was trained with other options: --lr 0.002 (checkpoint: 0.001), --beta 0.2 (checkpoint: 0.1); resume with the same options, or add --force"
ok "nothing trained" test ! -e "$T/r2/model.safetensors"
ok "no output folder left behind" test ! -e "$T/r2"
ok "--force goes on" dpo-train $run --lr 2e-3 --resume "$T/a/checkpoint-6" --force --out "$T/r3"
like "and says what differs" "$(cat "$T/.err")" "--force: going on with other options than the checkpoint's: --lr 0.002"
dpo-train $run --resume "$T/a/checkpoint-6" --model "$fx/reference" --out "$T/r4" 2>"$T/err"
is "resume naming another --model: exit 1" "$?" 1
like "names the model" "$(cat "$T/err")" "--model \"$(cd "$fx/reference" && pwd -P)\" (checkpoint: \"$(cd "$fx/policy" && pwd -P)\")"

# options the table cannot check, refused before any step (#17)
dpo-train $run --adam-eps 0 --out "$T/x" 2>"$T/err"
is "--adam-eps 0: usage error" "$?" 2
dpo-train $run --adam-beta2 1 --out "$T/x" 2>"$T/err"
is "--adam-beta2 1: usage error" "$?" 2
: >"$T/plain"
dpo-train $run --out "$T/plain" --log-json "$T/plain.log" 2>"$T/err"
is "--out naming a plain file: exit 1" "$?" 1
like "says so" "$(cat "$T/err")" "$T/plain: exists and is not a folder"
ok "before any step" test ! -s "$T/plain.log"
dpo-train $run --out "$T/nope/out" --log-json "$T/nope.log" 2>"$T/err"
is "--out in a folder that does not exist: exit 1" "$?" 1
like "says so" "$(cat "$T/err")" "$T/nope/out: cannot create the output folder: No such file or directory"
ok "before any step" test ! -s "$T/nope.log"
dpo-train $run --out "$T/plain/out" 2>"$T/err"
is "--out inside a plain file: exit 1" "$?" 1
like "says so" "$(cat "$T/err")" "$T/plain/out: cannot create the output folder: Not a directory"

# TRL's truncation settings; a --max-length that leaves no room is a usage
# error before anything runs (#17)
dpo-train $run --max-length 1 --out "$T/x" 2>"$T/err"
is "--max-length 1: usage error" "$?" 2
dpo-train $run --max-length 8 --max-prompt-length 8 --out "$T/x" 2>"$T/err"
is "--max-length not above --max-prompt-length: usage error" "$?" 2
like "says why" "$(cat "$T/err")" "--max-length 8 leaves no room for a completion after --max-prompt-length 8"
ok "--truncation-mode keep_start --max-completion-length 3" dpo-train --from-jsonl "$T/p.jsonl" $base --steps 1 \
	--batch-size 5 --truncation-mode keep_start --max-completion-length 3 --out "$T/ks"
ok "pairs were truncated (dpo_run.json)" sh -c "! grep -q '\"truncated\":[[:space:]]*0,' '$T/ks/dpo_run.json'"
like "dpo_run.json records them" "$(tr -d ' \n\t' <"$T/ks/dpo_run.json")" '"max_completion_length":3,"truncation_mode":"keep_start"'

# --loss ipo is TRL's ipo (per-token average log-probs); --ipo-sum the summed form (#17)
ok "ipo" dpo-train --from-jsonl "$T/p.jsonl" $base --steps 2 --batch-size 5 --loss ipo --log-json "$T/ipo.log" --out "$T/ipo"
ok "ipo --ipo-length-norm" dpo-train --from-jsonl "$T/p.jsonl" $base --steps 2 --batch-size 5 --loss ipo \
	--ipo-length-norm --log-json "$T/ipo-n.log" --out "$T/ipo-n"
ok "ipo --ipo-sum" dpo-train --from-jsonl "$T/p.jsonl" $base --steps 2 --batch-size 5 --loss ipo --ipo-sum \
	--log-json "$T/ipo-s.log" --out "$T/ipo-s"
ok "ipo is the length-normalised form" "$cmp" same "$T/ipo.log" "$T/ipo-n.log"
ok "and not the summed one" sh -c "! '$cmp' same '$T/ipo.log' '$T/ipo-s.log' 2>/dev/null"
like "dpo_run.json says so" "$(tr -d ' \n\t' <"$T/ipo/dpo_run.json")" '"ipo_length_norm":true'

# NaN/inf: a huge learning rate blows the weights up; the run stops, the checkpoint stays
dpo-train --from-jsonl "$T/p.jsonl" $base --batch-size 5 --steps 6 --lr 1e38 --save-every 1 \
	--out "$T/nan" 2>"$T/err"
is "non-finite loss: exit 1" "$?" 1
like "clear message" "$(cat "$T/err")" "stopping (last checkpoint: $T/nan/checkpoint-"
ck=$(sed -n 's/.*last checkpoint: \([^)]*\)).*/\1/p' "$T/err")
ok "the last checkpoint is complete" test -s "$ck/model.safetensors" -a -s "$ck/optimizer.bin" \
	-a -s "$ck/ref_logps.bin" -a -s "$ck/config.json"
ok "its weights file parses" "$cmp" params "$ck/model.safetensors" "$ck/model.safetensors"
like "its state is that of the last good step" "$(cat "$ck/trainer_state.json")" '"step": 1,'
ok "no final model written by the failed run" test ! -e "$T/nan/model.safetensors"
# --log-json of a new run is written aside and renamed when the run ends: the
# failed run leaves a good log from before as it was, and no temporary file;
# a run that ends replaces it (#12)
printf '{"step": 1, "a good log": true}\n' >"$T/good.log"
cp "$T/good.log" "$T/good.log.orig"
dpo-train --from-jsonl "$T/p.jsonl" $base --batch-size 5 --steps 6 --lr 1e38 --log-json "$T/good.log" \
	--out "$T/nan2" 2>"$T/err"
is "non-finite loss with --log-json over a good log: exit 1" "$?" 1
ok "the good log is left as it was" cmp "$T/good.log" "$T/good.log.orig"
is "no temporary log left" "$(ls "$T" | grep -c '^good\.log\.tmp')" 0
ok "a run that ends writes its log over it" dpo-train --from-jsonl "$T/p.jsonl" $base --batch-size 5 --steps 2 \
	--log-json "$T/good.log" --out "$T/good"
is "the new log has its 2 steps" "$(grep -c '"step"' "$T/good.log")" 2
is "and no temporary log" "$(ls "$T" | grep -c '^good\.log\.tmp')" 0

# --gradient-checkpointing: the same run, step for step, and the same weights
# (the gradients are bit-identical: tests/test_trainer.c) (#17)
ok "a run with --gradient-checkpointing" dpo-train --from-jsonl "$T/p.jsonl" $base --batch-size 5 \
	--steps 3 --gradient-checkpointing --log-json "$T/gc.log" --out "$T/gc"
ok "the same run without it" dpo-train --from-jsonl "$T/p.jsonl" $base --batch-size 5 --steps 3 \
	--log-json "$T/nogc.log" --out "$T/nogc"
ok "the same losses at every step" "$cmp" same "$T/nogc.log" "$T/gc.log"
ok "the same weights, byte for byte" cmp "$T/gc/model.safetensors" "$T/nogc/model.safetensors"
ok "... and dpo_run.json says it was on" grep -q '"gradient_checkpointing":[[:space:]]*true' "$T/gc/dpo_run.json"
ok "... and off without it" grep -q '"gradient_checkpointing":[[:space:]]*false' "$T/nogc/dpo_run.json"

# EOS appended by default; truncation reported
dpo-train --from-jsonl "$T/p.jsonl" --model "$fx/policy" --steps 1 --batch-size 5 --max-length 30 \
	--max-prompt-length 8 --out "$T/eos" 2>"$T/err"
is "EOS and truncation run: exit 0" "$?" 0
like "truncated pairs reported" "$(cat "$T/err")" "4 truncated to --max-length 30"
ok "dpo_run.json records the run" grep -q '"truncated":[[:space:]]*4' "$T/eos/dpo_run.json"

# evaluation on held-out pairs
ok "eval run" dpo-train --from-jsonl "$T/p.jsonl" $base --batch-size 5 --steps 2 \
	--eval-jsonl "$T/p.jsonl" --eval-every 1 --log-json "$T/ev.log" --out "$T/ev"
is "eval lines: after step 1 and at the end" "$(grep -c '"eval_loss"' "$T/ev.log")" 2
ok "eval metrics use TRL names" grep -q '"eval_rewards/accuracies"' "$T/ev.log"

# losses: every loss runs (reference-free ones without a reference pass)
for l in robust hinge ipo sft simpo sigmoid,sft; do
	ok "--loss $l" dpo-train --from-jsonl "$T/p.jsonl" --model "$fx/policy" --steps 1 \
		--batch-size 5 --loss $l --label-smoothing 0.1 --out "$T/l" --quiet
done

# the store: pairs, reference cache, run and metrics
if command -v dpo-db >/dev/null 2>&1; then
	db="$T/d.db"
	dpo-db --db "$db" import -q "$T/p.jsonl" >/dev/null 2>&1
	ok "train from the store" dpo-train --from-db --db "$db" --model "$fx/policy" \
		--ref-model "$fx/reference" --no-append-eos --steps 2 --batch-size 5 --out "$T/s1"
	like "first run computes the reference log-probs" "$(cat "$T/.err")" "0 from the cache, 5 computed"
	ok "second run" dpo-train --from-db --db "$db" --model "$fx/policy" \
		--ref-model "$fx/reference" --no-append-eos --steps 2 --batch-size 5 --out "$T/s2" \
		--log-json "$T/s2.log"
	like "second run reuses them" "$(cat "$T/.err")" "5 from the cache, 0 computed"
	ok "same losses from cached reference log-probs" "$cmp" same "$T/s2.log" "$T/s2.log"
	if command -v sqlite3 >/dev/null 2>&1; then
		is "two train runs recorded ok" "$(sqlite3 "$db" "select count(*) from runs where kind='train' and status='ok'")" 2
		is "metrics recorded with TRL names" \
			"$(sqlite3 "$db" "select count(distinct name) from metrics where name in ('loss','grad_norm','learning_rate','rewards/chosen','rewards/rejected','rewards/accuracies','rewards/margins','logps/chosen','logps/rejected','logits/chosen','logits/rejected')")" 11
	fi
	# a resumed run continues the checkpoint's store run, and its log has
	# each step once (#17)
	rs="--from-db --db $db --model $fx/policy --ref-model $fx/reference --no-append-eos --steps 4 --batch-size 2 --lr 1e-3 --seed 5"
	ok "a run with checkpoints" dpo-train $rs --save-every 2 --out "$T/rr" --log-json "$T/rr.log"
	ok "resumed from its checkpoint-2" dpo-train $rs --resume "$T/rr/checkpoint-2" --out "$T/rr2" --log-json "$T/rr.log"
	is "the log has steps 1 to 4 once each" "$(sed 's/^{"step": \([0-9]*\),.*/\1/' "$T/rr.log" | tr '\n' ' ')" "1 2 3 4 "
	if command -v sqlite3 >/dev/null 2>&1; then
		is "one store run for both" "$(sqlite3 "$db" "select count(*) || ' ' || min(status) from runs where kind='train' and command like '%--seed 5%'")" "1 ok"
		is "its losses: 4 steps" "$(sqlite3 "$db" "select count(*) from metrics m join runs r on r.id = m.run_id where r.command like '%--seed 5%' and m.name = 'loss'")" 4
	fi
	dpo-train --from-db --db "$db" --split nosuch --model "$fx/policy" --out "$T/s3" 2>"$T/err"
	is "empty split: exit 1" "$?" 1

	# a store on read-only media is read: the run trains, and says that
	# nothing is recorded in the store (#12). Root ignores permissions, so a
	# read-only tmpfs in a private mount namespace; skipped where not allowed.
	if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
		mkdir "$T/ro"
		unshare -m sh -c '
			mount -t tmpfs none "$1/ro" && cp "$2" "$1/ro/d.db" && mount -o remount,ro "$1/ro" || exit 99
			t=$1 && shift 2
			dpo-train --from-db --db "$t/ro/d.db" "$@" >/dev/null 2>"$t/ro.err"' \
			sh "$T" "$db" --model "$fx/policy" --ref-model "$fx/reference" --no-append-eos --steps 2 \
			--batch-size 5 --out "$T/ro-out" --log-json "$T/ro.log"
		rc=$?
		if [ "$rc" = 99 ]; then
			echo "# could not mount a read-only tmpfs: read-only media not tested"
		else
			is "read-only media: dpo-train --from-db trains" "$rc" 0
			like "read-only media: says the store cannot be written" "$(cat "$T/ro.err")" \
				"$T/ro/d.db: cannot be written (read-only folder or media); opened it read-only as immutable"
			like "read-only media: and that the run is not recorded" "$(cat "$T/ro.err")" \
				"$T/ro/d.db: read-only: this run, its metrics and the reference log-probs it computes are not recorded in it"
			ok "read-only media: the same losses as the run recorded in the store" "$cmp" same "$T/s2.log" "$T/ro.log"
			ok "read-only media: the model is written" test -s "$T/ro-out/model.safetensors"
		fi
	else
		echo "# not root or no mount namespaces: read-only media not tested"
	fi

	# --beta-sweep: one policy per beta, each a full run; finished ones reused
	sw="--from-db --db $db --model $fx/policy --ref-model $fx/reference --no-append-eos --steps 2 --batch-size 5 --lr 1e-3"
	ok "beta sweep" dpo-train $sw --beta-sweep 0.1,0.5 --out "$T/sw" --log-json "$T/sw.log"
	ok "the first policy trained with beta 0.1" grep -q '"beta":[[:space:]]*0.1,' "$T/sw/beta-0.1/dpo_run.json"
	ok "the second with beta 0.5" grep -q '"beta":[[:space:]]*0.5,' "$T/sw/beta-0.5/dpo_run.json"
	like "sweep.json lists them" "$(tr -d ' \t\n' <"$T/sw/sweep.json")" \
		'"policies":[{"beta":0.1,"dir":"'"$T"'/sw/beta-0.1"},{"beta":0.5,"dir":"'"$T"'/sw/beta-0.5"}]'
	ok "a log per beta" test -s "$T/sw.log.beta-0.1" -a -s "$T/sw.log.beta-0.5"
	ok "the two policies differ" sh -c "! cmp -s '$T/sw/beta-0.1/model.safetensors' '$T/sw/beta-0.5/model.safetensors'"
	ok "the same run as a plain --beta 0.5" dpo-train $sw --beta 0.5 --out "$T/b05" --quiet
	ok "gives the same model" cmp "$T/sw/beta-0.5/model.safetensors" "$T/b05/model.safetensors"
	ok "rerun of the sweep" dpo-train $sw --beta-sweep 0.1,0.5,1 --out "$T/sw"
	like "reuses the finished policies" "$(cat "$T/.err")" "beta 0.5: reusing $T/sw/beta-0.5"
	ok "and trains the new one" test -s "$T/sw/beta-1/model.safetensors"
	dpo-train $sw --beta-sweep 0.1,x --out "$T/sw2" 2>"$T/err"
	is "bad sweep list: exit 2" "$?" 2
	like "says what it expected" "$(cat "$T/err")" "positive numbers separated by commas"
fi
done_testing
