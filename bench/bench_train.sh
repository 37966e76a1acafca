#!/bin/sh
# bench_train.sh BUILDDIR: one DPO training step of dpo-train's engine vs
# PyTorch (../shared/bench/torch_dpo_bench.py) on the same machine, in the
# same run: GPT-2-124M shape (1 pair x 256 tokens) and the small shape, 2
# threads. Prints both JSON lines and the tokens/s ratio (goal: >= 2x on
# the GPT-2 shape, >= 3x on the small one).
b=${1:-.}
src=$(cd "$(dirname "$0")/.." && pwd)
shared=${DPO_SHARED:-$src/../shared}
torch_ok=0
if [ -f "$shared/bench/torch_dpo_bench.py" ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
	torch_ok=1
fi
run() {
	name=$1; goal=$2; shift 2
	ours=$("$b/bench/bench_train" "$@" --threads 2) || { echo "bench_train failed"; return 1; }
	echo "$name dpo:   $ours"
	if [ $torch_ok = 1 ]; then
		theirs=$(/usr/bin/python3 "$shared/bench/torch_dpo_bench.py" "$@" --threads 2 | tail -1)
		echo "$name torch: $theirs"
		a=$(echo "$ours" | sed 's/.*"tokens_per_s": \([0-9.]*\).*/\1/')
		t=$(echo "$theirs" | sed 's/.*"tokens_per_s": \([0-9.]*\).*/\1/')
		awk -v a="$a" -v t="$t" -v g="$goal" -v n="$name" 'BEGIN {
			r = a / t; printf "%s: %.2fx PyTorch (goal >= %sx) %s\n", n, r, g, (r >= g ? "ok" : "BELOW GOAL") }'
	else
		echo "$name: PyTorch (python3-torch) is not installed here: ratio not measured"
	fi
}
run gpt2-124m 2.0 --steps 3
run small 3.0 --layers 4 --d 256 --heads 4 --vocab 8192 --pairs 4 --seq 128 --steps 3
