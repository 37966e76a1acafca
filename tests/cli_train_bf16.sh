#!/bin/sh
# cli_train_bf16.sh: dpo-train --precision on the tiny fixtures: the bf16
# run of adamw_run stays within the derived bf16 loss tolerance of the
# float64 oracle, auto resolves by the CPU (DPO_NO_AVX512BF16 forces f32)
# and is recorded resolved, --resume refuses another precision, the
# reference cache keeps f32 and bf16 log-probs apart, and bf16 runs
# (through the portable kernel) on a CPU without AVX512-BF16.
. "$top_srcdir/tests/tap.sh"
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMP_WAIT_POLICY
skip() { _tap_result 0 "# SKIP $1"; }
have_shared || skip_all "no ../shared fixtures"
cmp="$top_builddir/tests/test_trainer_cmp"
fx="$DPO_SHARED/fixtures/tiny-llama"
"$cmp" pairs "$fx/oracle.json" >"$T/p.jsonl"
base="--from-jsonl $T/p.jsonl --model $fx/policy --ref-model $fx/reference --beta 0.1 --lr 1e-3
 --max-grad-norm 1 --schedule constant --no-append-eos --batch-size 5 --quiet"

dpo-train $base --steps 1 --precision f16 --out "$T/x" 2>"$T/err"
is "--precision f16: exit 2" $? 2
like "names the choices" "$(cat "$T/err")" "expected one of f32, bf16, auto"

ok "bf16 run of adamw_run" dpo-train $base --steps 8 --precision bf16 --log-json "$T/a.log" --out "$T/a"
like "dpo_run.json records bf16" "$(tr -d ' \t\n' <"$T/a/dpo_run.json")" '"precision":"bf16"'
# The loss tolerance is derived in tests/test_trainer_bf16.c (4 standard
# deviations of the bf16 rounding model, beta 0.1, 2 layers): 0.05 here;
# float32 matches the oracle to 1e-4 (cli_train_parity.sh).
if command -v python3 >/dev/null 2>&1; then
	ok "bf16 losses within 0.05 of the oracle, and not the float32 ones" python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))["adamw_run"]["steps"]
got = [json.loads(l)["loss"] for l in open(sys.argv[2])]
d = [abs(g - s["loss"]) for g, s in zip(got, o)]
print("max |d loss|", max(d))
sys.exit(0 if len(got) == 8 and max(d) <= 0.05 and max(d) > 1e-6 else 1)' "$fx/oracle.json" "$T/a.log"
else
	skip "python3 is absent"
fi

DPO_NO_AVX512BF16=1 dpo-train $base --steps 1 --precision auto --out "$T/auto0"
like "auto without AVX512-BF16 is f32" "$(tr -d ' \t\n' <"$T/auto0/dpo_run.json")" '"precision":"f32"'
dpo-train $base --steps 1 --precision auto --out "$T/auto1"
want=f32
grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null && want=bf16
like "auto here is $want" "$(tr -d ' \t\n' <"$T/auto1/dpo_run.json")" "\"precision\":\"$want\""
DPO_NO_AVX512BF16=1 dpo-train $base --steps 1 --precision bf16 --out "$T/port" --log-json "$T/port.log" 2>"$T/err"
is "bf16 without AVX512-BF16 runs" $? 0
like "and warns that it is slow" "$(cat "$T/err")" "no AVX512-BF16"
if command -v python3 >/dev/null 2>&1; then
	ok "the portable kernel gives the same step as the AVX512-BF16 one (1e-5)" python3 -c '
import json, sys
a = json.loads(open(sys.argv[1]).readline())["loss"]
b = json.loads(open(sys.argv[2]).readline())["loss"]
sys.exit(0 if abs(a - b) <= 1e-5 * abs(b) else 1)' "$T/port.log" "$T/a.log"
fi

# --resume keeps the precision
ok "bf16 run with a checkpoint" dpo-train $base --steps 4 --batch-size 2 --precision bf16 --save-every 2 --out "$T/r"
dpo-train $base --steps 4 --batch-size 2 --resume "$T/r/checkpoint-2" --out "$T/r2" 2>"$T/err"
is "resume in f32 (the default) from a bf16 checkpoint: exit 1" $? 1
like "names the precision" "$(cat "$T/err")" '--precision "f32" (checkpoint: "bf16")'
ok "resume in bf16" dpo-train $base --steps 4 --batch-size 2 --precision bf16 --resume "$T/r/checkpoint-2" --out "$T/r3"

# the reference cache: keyed by precision
if command -v dpo-db >/dev/null 2>&1; then
	db="$T/d.db"
	dpo-db --db "$db" import -q "$T/p.jsonl" >/dev/null 2>&1
	st="--from-db --db $db --model $fx/policy --ref-model $fx/reference --no-append-eos --steps 1 --batch-size 5"
	ok "f32 run from the store" dpo-train $st --out "$T/s1"
	like "computes the f32 reference" "$(cat "$T/.err")" "0 from the cache, 5 computed"
	ok "bf16 run from the store" dpo-train $st --precision bf16 --out "$T/s2"
	like "does not reuse the f32 log-probs" "$(cat "$T/.err")" "0 from the cache, 5 computed"
	ok "second bf16 run" dpo-train $st --precision bf16 --out "$T/s3"
	like "reuses the bf16 log-probs" "$(cat "$T/.err")" "5 from the cache, 0 computed"
	ok "f32 again" dpo-train $st --out "$T/s4"
	like "reuses the f32 log-probs" "$(cat "$T/.err")" "5 from the cache, 0 computed"
else
	skip "dpo-db is absent"
fi
done_testing
