#!/bin/sh
# bench_ckpt.sh BUILDDIR: activation checkpointing (dpo-train
# --gradient-checkpointing) on the GPT-2-124M shape at 1 pair x 1024 tokens,
# 2 threads: peak RSS and step time with and without it, in the same run.
# Goals (#17): peak RSS drops >= 2x, step time grows <= 40%. Also printed:
# the activation part alone (peak RSS minus the parameters, gradients and
# two AdamW moments, 16 bytes per parameter, which no checkpointing can
# shrink), and the CPU-time ratio (steadier than wall time on a shared
# machine).
b=${1:-.}
shape="--layers 12 --d 768 --heads 12 --vocab 50257 --pairs 1 --seq 1024 --steps 2 --threads 2"
off=$("$b/bench/bench_train" $shape --checkpointing 0 2>/dev/null) || { echo "bench_train failed"; exit 1; }
on=$("$b/bench/bench_train" $shape --checkpointing 1 2>/dev/null) || { echo "bench_train failed"; exit 1; }
echo "without: $off"
echo "with:    $on"
field() { echo "$1" | sed "s/.*\"$2\": \([0-9.]*\).*/\1/"; }
awk -v r0="$(field "$off" peak_rss_mb)" -v r1="$(field "$on" peak_rss_mb)" \
    -v t0="$(field "$off" s_per_step)" -v t1="$(field "$on" s_per_step)" \
    -v c0="$(field "$off" cpu_s_per_step)" -v c1="$(field "$on" cpu_s_per_step)" \
    -v np="$(field "$off" params)" 'BEGIN {
	m = r0 / r1; s = t1 / t0 - 1; cs = c1 / c0 - 1; fixed = 16 * np / 1048576
	printf "peak RSS %.0f -> %.0f MB: %.2fx less (goal >= 2x) %s\n", r0, r1, m, (m >= 2 ? "ok" : "BELOW GOAL")
	printf "  of which parameters + gradients + AdamW moments: %.0f MB; the rest %.0f -> %.0f MB: %.1fx less\n",
		fixed, r0 - fixed, r1 - fixed, (r0 - fixed) / (r1 - fixed)
	printf "step time %.2f -> %.2f s: %+.0f%% (goal <= +40%%) %s\n", t0, t1, 100 * s, (s <= 0.4 ? "ok" : "ABOVE GOAL")
	printf "  CPU time per step %.2f -> %.2f s: %+.0f%%\n", c0, c1, 100 * cs }'
