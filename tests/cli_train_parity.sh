#!/bin/sh
# cli_train_parity.sh: the black-box parity run of dpo-train against the
# oracles of ../shared/fixtures/tiny-{gpt2,llama,qwen3}: 8 full-batch AdamW
# steps must reproduce adamw_run (losses within 1e-4 relative, grad norms
# within 1e-3) and adamw_final_params.safetensors (each tensor within 1e-3
# relative), from text pairs (tokenized by dpo's tokenizer) and from the
# oracle's pre-tokenized ids.
. "$top_srcdir/tests/tap.sh"
# Tiny models run many short parallel regions; on a busy machine libgomp's
# spinning idle threads cost more than the work itself.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMP_WAIT_POLICY
have_shared || skip_all "no ../shared fixtures"
cmp="$top_builddir/tests/test_trainer_cmp"

for m in tiny-gpt2 tiny-llama tiny-qwen3; do
	fx="$DPO_SHARED/fixtures/$m"
	"$cmp" pairs "$fx/oracle.json" >"$T/$m.jsonl"
	"$cmp" ids "$fx/oracle.json" >"$T/$m.ids.jsonl"
	for kind in jsonl ids.jsonl; do
		out="$T/out-$m-$kind"
		ok "$m ($kind): dpo-train runs" dpo-train --from-jsonl "$T/$m.$kind" \
			--model "$fx/policy" --ref-model "$fx/reference" --loss sigmoid --beta 0.1 \
			--lr 1e-3 --weight-decay 0 --max-grad-norm 1 --batch-size 5 --steps 8 \
			--schedule constant --no-append-eos --log-json "$T/$m-$kind.log" --out "$out"
		ok "$m ($kind): losses and grad norms match adamw_run" \
			"$cmp" log "$fx/oracle.json" "$T/$m-$kind.log"
		sed 's/^/# /' "$T/.out"
		ok "$m ($kind): final parameters match adamw_final_params" \
			"$cmp" params "$fx/adamw_final_params.safetensors" "$out/model.safetensors"
		sed 's/^/# /' "$T/.out"
	done
	ok "$m: output has config.json, tokenizer files and dpo_run.json" \
		test -s "$out/config.json" -a -s "$out/tokenizer.json" -a -s "$out/dpo_run.json"
done
done_testing
