#!/bin/sh
# demo.sh BUILDDIR: dpo's end-to-end demo on the built-in verifiable task
# (reverse five digits: share/task/task.py writes the prompts and examples,
# BUILDDIR/share/task/task-verify checks answers), run by `./setup.sh demo`.
#
#   1. train a tiny reference model from scratch (dpo-model init, then
#      dpo-train --loss sft on task examples)
#   2. create a database and import the task's train and test prompts
#   3. dpo-generate K=4 completions per train prompt from the reference
#   4. dpo-judge --provider exec with the task's verifier
#   5. dpo-train --from-db starting from the reference, with the DPO
#      (sigmoid) loss alone
#   6. dpo-eval on the held-out test prompts: accuracy before/after, win rate,
#      KL to the reference
#   7. the reward-vs-KL frontier: dpo-train --beta-sweep trains one policy
#      per beta, dpo-eval measures each (16 samples per prompt, which also
#      gives best-of-N from the reference for N up to 16)
#   8. dpo-db report: an HTML page with the statistics, training curves and
#      the frontier
#
# The programs are BUILDDIR's, or those in the folder DPO_BIN names (the
# tests run the demo with the installed ones). Everything is written under
# DPO_DEMO_DIR (default BUILDDIR/demo). A rerun
# skips every step whose output exists (generate and judge resume by
# themselves). DEMO_SCALE=small runs a quick version (used by the tests).
set -eu
build=${1:?usage: demo.sh BUILDDIR}
build=$(cd "$build" && pwd)
share=$(cd "$(dirname "$0")" && pwd)
out=${DPO_DEMO_DIR:-$build/demo}
db=$out/demo.db
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3  # not a slow shim when there is a system one
task="$py $share/task/task.py"
threads=${DPO_THREADS:-$(nproc 2>/dev/null || echo 2)}

# the programs: every one is built at the top of the build folder
bin=${DPO_BIN:-$build}
prog() {
	[ -x "$bin/$1" ] && { echo "$bin/$1"; return 0; }
	echo "demo.sh: $1 not found in $bin (build it first)" >&2
	exit 1
}
DB=$(prog dpo-db)
MODEL=$(prog dpo-model)
GEN=$(prog dpo-generate)
JUDGE=$(prog dpo-judge)
TRAIN=$(prog dpo-train)
EVAL=$(prog dpo-eval)
VERIFY=$build/share/task/task-verify
[ -x "$VERIFY" ] || { echo "demo.sh: $VERIFY not found (build it first)" >&2; exit 1; }

case ${DEMO_SCALE:-full} in
full)	sft_rows=7680 sft_steps=120 n_train=4096 n_test=200 dpo_epochs=2 eval_samples=4
	betas=0.1,0.2,0.5,1,2 frontier_samples=16 ;;
small)	sft_rows=6400 sft_steps=100 n_train=24 n_test=8 dpo_epochs=1 eval_samples=1
	betas=0.5,2 frontier_samples=2 ;;
*)	echo "demo.sh: DEMO_SCALE must be full or small" >&2; exit 2 ;;
esac

mkdir -p "$out"
step() { printf '\n== %s\n' "$*" >&2; }
t0=$(date +%s)

step "1. reference model: init + SFT from scratch ($sft_steps steps)"
if [ ! -f "$out/ref/model.safetensors" ]; then
	rm -rf "$out/init" "$out/ref"
	"$MODEL" init --config "$share/task/config.json" --tokenizer "$share/task" \
		--out "$out/init" --seed 1 >&2
	$task sft --n "$sft_rows" >"$out/sft.jsonl"
	"$TRAIN" --from-jsonl "$out/sft.jsonl" --loss sft --model "$out/init" --out "$out/ref.tmp" \
		--lr 3e-3 --schedule constant --warmup-steps 10 --batch-size 64 \
		--steps "$sft_steps" --log-every 20 --threads "$threads" --log-json "$out/sft-log.jsonl"
	rm -rf "$out/ref"
	mv "$out/ref.tmp" "$out/ref"
else
	echo "reusing $out/ref" >&2
fi

step "2. database with the task's prompts"
"$DB" --db "$db" init >&2
if [ ! -f "$out/prompts.done" ]; then
	$task prompts --split train --n "$n_train" >"$out/train-prompts.jsonl"
	$task prompts --split test --n "$n_test" >"$out/test-prompts.jsonl"
	"$DB" --db "$db" import --format prompts --source task --split train -q \
		"$out/train-prompts.jsonl"
	"$DB" --db "$db" import --format prompts --source task --split test -q \
		"$out/test-prompts.jsonl"
	touch "$out/prompts.done"
else
	echo "prompts already imported" >&2
fi

step "3. K=4 completions per train prompt from the reference"
# a marker, not dpo-generate's own resume: identical samples are stored once,
# so prompts with duplicates would get fresh samples on every rerun
if [ ! -f "$out/generate.done" ]; then
	"$GEN" --db "$db" --model "$out/ref" --name reference --n 4 --split train \
		--temperature 1 --max-new-tokens 8 --threads "$threads" >&2
	touch "$out/generate.done"
else
	echo "completions already generated" >&2
fi

step "4. judge every pair with the task's verifier (dpo-judge --provider exec)"
"$JUDGE" --db "$db" --provider exec --command "$VERIFY judge" --split train \
	--concurrency "$threads" -q

# the DPO run's options; the frontier sweep uses the same ones but beta
dpo() {
	"$TRAIN" --from-db --db "$db" --split train --model "$out/ref" --loss sigmoid --lr 5e-4 \
		--schedule cosine --warmup-steps 5 --batch-size 16 --epochs "$dpo_epochs" \
		--threads "$threads" "$@"
}

step "5. DPO from the reference"
if [ ! -f "$out/policy/model.safetensors" ]; then
	rm -rf "$out/policy.tmp"
	dpo --beta 1 --out "$out/policy.tmp" --log-every 50
	rm -rf "$out/policy"
	mv "$out/policy.tmp" "$out/policy"
else
	echo "reusing $out/policy" >&2
fi

step "6. evaluation on the held-out test prompts"
if [ ! -f "$out/eval.json" ]; then
	"$EVAL" --db "$db" --policy "$out/policy" --baseline "$out/ref" --split test \
		--samples "$eval_samples" --max-new-tokens 8 --threads "$threads" -q --json \
		--task-command "$VERIFY check" \
		-- --provider exec --command "$VERIFY judge" --concurrency "$threads" >"$out/eval.json.tmp"
	mv "$out/eval.json.tmp" "$out/eval.json"
else
	echo "reusing $out/eval.json" >&2
fi

step "7. frontier: one DPO policy per beta ($betas), each evaluated with $frontier_samples samples per prompt"
dpo --beta-sweep "$betas" --out "$out/sweep" --log-every 1000
for b in $(echo "$betas" | tr , ' '); do
	[ -f "$out/sweep/beta-$b.eval.json" ] && continue
	"$EVAL" --db "$db" --policy "$out/sweep/beta-$b" --baseline "$out/ref" --split test \
		--samples "$frontier_samples" --max-new-tokens 8 --threads "$threads" -q --json \
		--task-command "$VERIFY check" >"$out/sweep/beta-$b.eval.json.tmp"
	mv "$out/sweep/beta-$b.eval.json.tmp" "$out/sweep/beta-$b.eval.json"
done

step "8. report"
"$DB" --db "$db" report "$out/report.html" >&2 || echo "demo.sh: dpo-db report failed" >&2

t1=$(date +%s)
python3 - "$out/eval.json" "$db" "$out/report.html" $((t1 - t0)) <<'EOF'
import json, sys
e = json.load(open(sys.argv[1]))
def pct(x):
    return "n/a" if x is None else "%.1f%%" % (100 * x)
print()
print("dpo demo: reverse five digits, tiny Llama trained from scratch, then DPO")
print("  held-out prompts:      %d (%d samples each)" % (e["prompts"], e["samples"]))
print("  accuracy, reference:   %s" % pct(e["accuracy_baseline"]))
print("  accuracy, DPO policy:  %s" % pct(e["accuracy_policy"]))
if e["accuracy_policy"] is not None and e["accuracy_baseline"] is not None:
    print("  improvement:           %+.1f points" % (100 * (e["accuracy_policy"] - e["accuracy_baseline"])))
print("  win rate vs reference: %s [95%% CI %s, %s] (%d wins, %d losses, %d ties)" % (
    pct(e["win_rate"]), pct(e["win_rate_ci_low"]), pct(e["win_rate_ci_high"]),
    e["wins"], e["losses"], e["ties"]))
print("  KL to the reference:   %.3f nats" % e["kl"])
import glob, os
rows = []
for f in glob.glob(os.path.join(os.path.dirname(sys.argv[1]), "sweep", "beta-*.eval.json")):
    x = json.load(open(f))
    rows.append((x["policy_beta"], x["accuracy_policy"], x["kl"], x.get("best_of_n", [])))
if rows:
    rows.sort()
    print("  frontier (accuracy at KL to the reference, nats):")
    for b, a, k, _ in rows:
        print("    DPO beta=%-4g          %s at %.2f" % (b, pct(a), k))
    for p in max((r[3] for r in rows), key=len):
        print("    best-of-%-3d reference %s at %.2f" % (p["n"], pct(p["accuracy"]), p["kl"]))
print("  database:              %s" % sys.argv[2])
print("  report:                %s" % sys.argv[3])
print("  took:                  %s s" % sys.argv[4])
EOF
