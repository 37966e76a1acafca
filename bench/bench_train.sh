#!/bin/sh
# bench_train.sh BUILDDIR: one DPO training step of dpo-train's engine vs
# PyTorch (../shared/bench/torch_dpo_bench.py) on the same machine, in the
# same run: GPT-2-124M shape (1 pair x 256 tokens) and the small shape, 2
# threads. Prints the JSON lines and the tokens/s ratios:
#   f32:  dpo vs PyTorch f32 (goal >= 2x on the GPT-2 shape, >= 3x small);
#   bf16: dpo --precision bf16 vs PyTorch --bf16 (autocast; goal >= 2x on
#         GPT-2, >= 1.5x small), dpo bf16 vs dpo f32 (goal >= 1.6x on
#         GPT-2), the share of the bf16 peak (a register-only vdpbf16ps
#         probe, bench_gemm_bf16 --peak) each bf16 step reaches (goal >= 40%
#         on GPT-2), and peak RSS (bf16 must not exceed f32).
b=${1:-.}
src=$(cd "$(dirname "$0")/.." && pwd)
shared=${DPO_SHARED:-$src/../shared}
torch_ok=0
if [ -f "$shared/bench/torch_dpo_bench.py" ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
	torch_ok=1
fi
field() { echo "$1" | sed "s/.*\"$2\": \([0-9.]*\).*/\1/"; }
ratio() { # name a b goal what
	awk -v a="$2" -v t="$3" -v g="$4" -v n="$1" -v w="$5" 'BEGIN {
		r = a / t
		if (g == "-") printf "%s: %.2fx %s (no goal)\n", n, r, w
		else printf "%s: %.2fx %s (goal >= %sx) %s\n", n, r, w, g, (r >= g ? "ok" : "BELOW GOAL") }'
}
set -- $("$b/bench/bench_gemm_bf16" --peak --threads 2 2>/dev/null) "" ""
peak=${1:-0} peak_cpu=${2:-0}
echo "bf16 peak (register-only vdpbf16ps probe, 2 threads): $peak GFLOP/s; $peak_cpu GFLOP per CPU-second"
set --
run() {
	name=$1; goal=$2; goal16=$3; goal_vs32=$4; goal_share=$5; shift 5
	ours=$("$b/bench/bench_train" "$@" --threads 2) || { echo "bench_train failed"; return 1; }
	echo "$name dpo:        $ours"
	ours16=$("$b/bench/bench_train" "$@" --threads 2 --precision bf16) ||
		{ echo "bench_train --precision bf16 failed"; return 1; }
	echo "$name dpo bf16:   $ours16"
	a=$(field "$ours" tokens_per_s)
	a16=$(field "$ours16" tokens_per_s)
	if [ $torch_ok = 1 ]; then
		theirs=$(/usr/bin/python3 "$shared/bench/torch_dpo_bench.py" "$@" --threads 2 | tail -1)
		echo "$name torch:      $theirs"
		theirs16=$(/usr/bin/python3 "$shared/bench/torch_dpo_bench.py" "$@" --threads 2 --bf16 | tail -1)
		echo "$name torch bf16: $theirs16"
		ratio "$name f32" "$a" "$(field "$theirs" tokens_per_s)" "$goal" "PyTorch f32"
		ratio "$name bf16" "$a16" "$(field "$theirs16" tokens_per_s)" "$goal16" "PyTorch bf16 autocast"
	else
		echo "$name: PyTorch (python3-torch) is not installed here: ratios to PyTorch not measured"
	fi
	ratio "$name bf16" "$a16" "$a" "$goal_vs32" "dpo f32"
	# the share of the peak, by wall time, and by CPU time (FLOPs per
	# CPU-second of the step against the probe's: what a loaded machine
	# leaves comparable)
	awk -v g="$(field "$ours16" gflops)" -v p="$peak" -v pc="$peak_cpu" -v goal="$goal_share" \
	    -v s="$(field "$ours16" s_per_step)" -v c="$(field "$ours16" cpu_s_per_step)" -v n="$name" 'BEGIN {
		if (p > 0) {
			gc = g * s / c
			v = goal == "-" ? "(no goal)" : sprintf("(goal >= %s%%) %s", goal, (100 * g / p >= goal ? "ok" : "BELOW GOAL"))
			printf "%s bf16: %.0f GFLOP/s = %.0f%% of the bf16 peak %s; by CPU time %.0f GFLOP per CPU-second = %.0f%% of the probe'"'"'s %.0f\n",
			       n, g, 100 * g / p, v, gc, 100 * gc / pc, pc
		} else
			printf "%s bf16: %.0f GFLOP/s (no AVX512-BF16 here: no peak to compare)\n", n, g }'
	awk -v a="$(field "$ours16" cpu_s_per_step)" -v b="$(field "$ours" cpu_s_per_step)" -v n="$name" 'BEGIN {
		printf "%s bf16 vs f32 by CPU time: %.3f vs %.3f CPU-s per step, %.2fx\n", n, a, b, b / a }'
	awk -v a="$(field "$ours16" peak_rss_mb)" -v b="$(field "$ours" peak_rss_mb)" -v n="$name" 'BEGIN {
		printf "%s peak RSS: bf16 %.0f MB, f32 %.0f MB %s\n", n, a, b,
		       (a <= b * 1.02 ? "ok" : "ABOVE f32") }'
}
run gpt2-124m 2.0 2.0 1.6 40 --steps 3
run small 3.0 1.5 - - --layers 4 --d 256 --heads 4 --vocab 8192 --pairs 4 --seq 128 --steps 3
