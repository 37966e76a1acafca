#!/bin/sh
# cli_ref_bf16_mpi.sh: dpo-train --ref-model --precision bf16 under mpirun
# (tests/cli_ref_bf16.sh has one process): rank 0 loads the reference in
# bf16 and sends it as it holds it, each rank computes its share of the
# reference pass with it, and the step equals one process's.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/mpi_lib.sh"
have_shared || skip_all "no ../shared fixtures"
cmp="$top_builddir/tests/test_trainer_cmp"
fx="$DPO_SHARED/fixtures/tiny-llama"
"$cmp" pairs "$fx/oracle.json" >"$T/p.jsonl"
js="--from-jsonl $T/p.jsonl --model $fx/policy --ref-model $fx/reference --no-append-eos
 --steps 1 --batch-size 5 --beta 0.1 --lr 1e-3 --threads 1 --precision bf16 --quiet"
ok "bf16 --ref-model, one process" dpo-train $js --log-json "$T/m1.log" --out "$T/m1"
ok "bf16 --ref-model, mpirun -np 2" mpi 2 $js --log-json "$T/m2.log" --out "$T/m2"
refw=$(python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["memory"].get("ref_weights"))' "$T/m2/dpo_run.json")
is "-np 2: dpo_run.json reports a bf16 reference" "$refw" bf16
# step 1's rewards are beta (policy - reference): a rank holding another
# reference (f32, or other RoPE tables) would move them
ok "-np 2: step 1 (rewards from the split reference pass) as one process" \
	$cmpr log "$T/m1.log" "$T/m2.log"
done_testing
