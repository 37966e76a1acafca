#!/bin/sh
# bench_train_mpi.sh BUILDDIR: data-parallel dpo-train (issue #17): the same
# training run as 1 rank x 1 thread and as `mpirun -np 2` x 1 thread each,
# on bench_train.sh's small shape (GPT-2 layout, 4 layers, d 256, 4 heads,
# vocab 8192; pairs of 32 prompt + 96 completion tokens, 4 pairs a step, so
# 2 per rank). Prints each run's training tokens/s (the loop's, from
# --log-json: loading and the reference pass left out), the speed-up (goal
# >= 1.8x) and the share of the 2-rank run's training time spent summing the
# gradients and sending the updated weights (the sharded optimizer's MPI
# reduces and broadcasts), and as the machine's own ceiling two
# independent 1-rank runs at once. Skips when dpo-train was built without MPI or
# there is no mpirun. The machine may be shared: both runs are measured
# here, one after the other.
b=${1:-.}
steps=${BENCH_MPI_STEPS:-12}
command -v mpirun >/dev/null 2>&1 || { echo "bench_train_mpi: no mpirun: skipped"; exit 0; }
[ -x "$b/dpo-train" ] || { echo "bench_train_mpi: no $b/dpo-train"; exit 1; }
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM OMP_NUM_THREADS OMP_WAIT_POLICY
t=$(mktemp -d "${TMPDIR:-/tmp}/bench_mpi.XXXXXX")
trap 'rm -rf "$t"' EXIT
if ! mpirun --oversubscribe -np 2 "$b/dpo-train" --version >/dev/null 2>&1; then
	echo "bench_train_mpi: dpo-train was built without MPI: skipped"
	exit 0
fi
cat >"$t/config.json" <<'EOF'
{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 4, "n_embd": 256,
 "n_head": 4, "vocab_size": 8192, "n_positions": 1024, "layer_norm_epsilon": 1e-5,
 "activation_function": "gelu_new", "tie_word_embeddings": true, "initializer_range": 0.02,
 "eos_token_id": 0, "bos_token_id": 0}
EOF
"$b/dpo-model" init --config "$t/config.json" --out "$t/model" >/dev/null || exit 1
awk -v n=$((4 * steps)) 'BEGIN {
	s = 12345
	for (i = 0; i < n; i++) {
		line = "{\"prompt_ids\": ["
		for (k = 0; k < 32; k++) { s = (s * 1103515245 + 12345) % 2147483648; line = line (k ? ", " : "") (1 + s % 8191) }
		line = line "], \"chosen_ids\": ["
		for (k = 0; k < 96; k++) { s = (s * 1103515245 + 12345) % 2147483648; line = line (k ? ", " : "") (1 + s % 8191) }
		line = line "], \"rejected_ids\": ["
		for (k = 0; k < 96; k++) { s = (s * 1103515245 + 12345) % 2147483648; line = line (k ? ", " : "") (1 + s % 8191) }
		print line "]}"
	}
}' >"$t/pairs.jsonl"
args="--from-jsonl $t/pairs.jsonl --model $t/model --no-append-eos --batch-size 4 --steps $steps
 --lr 1e-4 --threads 1"
tokps() { tail -n 1 "$1" | sed 's/.*"tokens_per_s": \([0-9.]*\).*/\1/'; }
# CPU seconds of each whole run (with loading and the reference pass; the
# ranks' time waiting for each other included), when /usr/bin/time is there
tm=
[ -x /usr/bin/time ] && tm="/usr/bin/time -f %U+%S -o"
$tm ${tm:+"$t/one.cpu"} "$b/dpo-train" $args --quiet --log-json "$t/one.log" --out "$t/one" ||
	{ echo "1-rank run failed"; exit 1; }
$tm ${tm:+"$t/two.cpu"} mpirun --oversubscribe -np 2 "$b/dpo-train" $args --log-json "$t/two.log" \
	--out "$t/two" 2>"$t/two.err" || { cat "$t/two.err"; echo "2-rank run failed"; exit 1; }
# the machine's own ceiling for two ranks: two independent 1-rank runs at
# once (two vCPUs need not give twice the work, e.g. on a shared host core)
"$b/dpo-train" $args --quiet --log-json "$t/i0.log" --out "$t/i0" &
"$b/dpo-train" $args --quiet --log-json "$t/i1.log" --out "$t/i1"
wait
one=$(tokps "$t/one.log")
two=$(tokps "$t/two.log")
both=$(echo "$(tokps "$t/i0.log") $(tokps "$t/i1.log")" | awk '{ print $1 + $2 }')
share=$(sed -n 's/.*summing the gradients took \([0-9.]*\) s of \([0-9.]*\) s.*/\1 \2/p' "$t/two.err")
echo "{\"ranks\": 1, \"threads_per_rank\": 1, \"steps\": $steps, \"tokens_per_s\": $one}"
echo "{\"ranks\": 2, \"threads_per_rank\": 1, \"steps\": $steps, \"tokens_per_s\": $two}"
echo "{\"independent_runs\": 2, \"threads_each\": 1, \"steps\": $steps, \"tokens_per_s_together\": $both}"
echo "$one $two $both $share" | awk '{
	r = $2 / $1
	printf "2 ranks x 1 thread: %.2fx 1 rank x 1 thread (goal >= 1.8x) %s\n", r, (r >= 1.8 ? "ok" : "BELOW GOAL")
	printf "two independent 1-thread runs at once: %.2fx one run (this machine'"'"'s ceiling for 2 ranks); 2 ranks reach %.0f%% of it\n", $3 / $1, 100 * $2 / $3
	if (NF == 5 && $5 > 0)
		printf "gradient sums and weight broadcasts: %.3f s of %.2f s of training (%.1f%% of the step time)\n", $4, $5, 100 * $4 / $5
}'
if [ -n "$tm" ]; then
	c1=$(tail -n 1 "$t/one.cpu" | awk -F+ '{ print $1 + $2 }')
	c2=$(tail -n 1 "$t/two.cpu" | awk -F+ '{ print $1 + $2 }')
	echo "CPU time of the whole runs: 1 rank $c1 s, 2 ranks $c2 s"
fi
