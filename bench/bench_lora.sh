#!/bin/sh
# bench_lora.sh BUILDDIR: one DPO step with full fine-tuning vs LoRA (r 16,
# all-linear) on the GPT-2-124M shape (1 pair x 256 tokens, 2 threads),
# each in its own process: tokens/s and peak RSS side by side, with the
# ratios. Then (skipped with DPO_BENCH_QUICK=1) LoRA r 16, 1 pair x 512
# tokens, f32, on the Qwen3-0.6B layout, and on the GPT-style 456M model of
# ../shared/bench/torch_lora_dpo_bench.py (same width and depth) against
# that script in the same run when PyTorch is installed; then the same
# two rows with --precision bf16 (the frozen base held in bf16) against
# the script's --bf16 autocast (goal: >= 2x its tok/s, peak RSS <= 4 GB on
# the Qwen3 layout). Peak RSS is that of the training steps (bench_lora.c).
b=${1:-.}
src=$(cd "$(dirname "$0")/.." && pwd)
shared=${DPO_SHARED:-$src/../shared}
field() { echo "$1" | sed "s/.*\"$2\": \([0-9.]*\).*/\1/"; }
full=$("$b/bench/bench_lora" --steps 2) || { echo "bench_lora failed"; exit 1; }
lora=$("$b/bench/bench_lora" --steps 2 --lora-r 16 --targets all-linear) || { echo "bench_lora failed"; exit 1; }
echo "gpt2-124m full: $full"
echo "gpt2-124m lora: $lora"
awk -v ft="$(field "$full" tokens_per_s)" -v lt="$(field "$lora" tokens_per_s)" \
    -v fm="$(field "$full" peak_rss_mb)" -v lm="$(field "$lora" peak_rss_mb)" 'BEGIN {
	printf "gpt2-124m: LoRA %.0f tok/s vs full %.0f tok/s (%.2fx); peak RSS %.0f MB vs %.0f MB (%.2fx less)\n",
	       lt, ft, lt / ft, lm, fm, fm / lm }'
[ "${DPO_BENCH_QUICK:-0}" = 1 ] && exit 0
# the Qwen3-0.6B layout (GQA 16/8 heads of 128, SwiGLU 3072: 596M parameters)
qwen="--arch qwen3 --layers 28 --d 1024 --heads 16 --kv-heads 8 --ffn 3072 --vocab 151936 --seq 512"
ours=$("$b/bench/bench_lora" $qwen --steps 1 --lora-r 16 --targets all-linear) || { echo "bench_lora failed"; exit 1; }
echo "qwen3-0.6b lora f32 dpo: $ours"
# PyTorch's script runs a GPT-style model of the same width and depth (qkv 3d, MLP 3d, LayerNorm,
# tied; 456M): the same shape here is GPT-2's layout with n_inner 3072
same="--arch gpt2 --layers 28 --d 1024 --heads 16 --ffn 3072 --vocab 151936 --seq 512"
ours=$("$b/bench/bench_lora" $same --steps 1 --lora-r 16 --targets all-linear) || { echo "bench_lora failed"; exit 1; }
echo "gpt-456m lora f32 dpo:   $ours"
if [ -f "$shared/bench/torch_lora_dpo_bench.py" ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
	theirs=$(/usr/bin/python3 "$shared/bench/torch_lora_dpo_bench.py" --threads 2 --steps 1 | tail -1)
	echo "gpt-456m lora f32 torch: $theirs"
	a=$(field "$ours" tokens_per_s)
	t=$(echo "$theirs" | sed 's/.*"tokens_per_s": \([0-9.]*\).*/\1/')
	awk -v a="$a" -v t="$t" 'BEGIN { printf "gpt-456m LoRA f32: %.2fx PyTorch f32\n", a / t }'
else
	echo "gpt-456m: PyTorch is not installed here: ratio not measured"
fi
# bf16: the frozen base in bf16 only, bf16 matmuls
# (the activations of 1024 rows x 28 layers are ~2.6 GB in f32: with
# --gradient-checkpointing only one layer's are kept)
for ck in "" --gradient-checkpointing; do
	ours=$("$b/bench/bench_lora" $qwen --steps 1 --lora-r 16 --targets all-linear --precision bf16 $ck) || { echo "bench_lora failed"; exit 1; }
	echo "qwen3-0.6b lora bf16 dpo ${ck:-(all activations kept)}: $ours"
	awk -v m="$(field "$ours" peak_rss_mb)" -v t="$(field "$ours" tokens_per_s)" -v ck="${ck:-all activations}" 'BEGIN {
		printf "qwen3-0.6b LoRA bf16 (%s): %.1f tok/s, peak RSS %.0f MB (goal <= 4096 MB: %s)\n", ck, t, m, m <= 4096 ? "met" : "NOT met" }'
done
ours=$("$b/bench/bench_lora" $same --steps 1 --lora-r 16 --targets all-linear --precision bf16) || { echo "bench_lora failed"; exit 1; }
echo "gpt-456m lora bf16 dpo:   $ours"
if [ -f "$shared/bench/torch_lora_dpo_bench.py" ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
	theirs=$(/usr/bin/python3 "$shared/bench/torch_lora_dpo_bench.py" --threads 2 --steps 1 --bf16 | tail -1)
	echo "gpt-456m lora bf16 torch: $theirs"
	a=$(field "$ours" tokens_per_s)
	t=$(echo "$theirs" | sed 's/.*"tokens_per_s": \([0-9.]*\).*/\1/')
	awk -v a="$a" -v t="$t" 'BEGIN { printf "gpt-456m LoRA bf16: %.2fx PyTorch bf16 autocast (goal >= 2x)\n", a / t }'
else
	echo "gpt-456m bf16: PyTorch is not installed here: ratio not measured"
fi
