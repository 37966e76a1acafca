#!/bin/sh
# cli_ref_bf16.sh: dpo-train --ref-model with --precision bf16 holds the
# reference in bf16 (it only runs forward): its log-probs, cached in the
# store under the fingerprint with "+bf16w" (the F32 fixture rounded at
# load), stay within the derived bf16 tolerance of the f32 reference's
# (kept under the bare fingerprint) yet differ from them; dpo_run.json
# reports the reference's precision and bytes (about half of f32's).
# (Under mpirun: tests/cli_ref_bf16_mpi.sh.)
. "$top_srcdir/tests/tap.sh"
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMP_WAIT_POLICY
have_shared || skip_all "no ../shared fixtures"
command -v python3 >/dev/null 2>&1 || skip_all "no python3 to read the store and dpo_run.json"
command -v dpo-db >/dev/null 2>&1 || skip_all "no dpo-db to fill the store"
cmp="$top_builddir/tests/test_trainer_cmp"
fx="$DPO_SHARED/fixtures/tiny-llama"
"$cmp" pairs "$fx/oracle.json" >"$T/p.jsonl"
db="$T/d.db"
dpo-db --db "$db" import -q "$T/p.jsonl" >/dev/null 2>&1
st="--from-db --db $db --model $fx/policy --ref-model $fx/reference --no-append-eos --steps 1
 --batch-size 5 --beta 0.1 --lr 1e-3 --threads 1"

ok "f32 run" dpo-train $st --out "$T/f"
ok "bf16 run" dpo-train $st --precision bf16 --out "$T/b"
like "computes the bf16 reference (the f32 log-probs not reused)" "$(cat "$T/.err")" \
	"0 from the cache, 5 computed"

# The tolerance of tests/test_trainer_bf16.c and dpo-train(1) (Accuracy),
# from the fixture's logits: a summed log-prob of T tokens within
# 4 sqrt(2T) K eps1 sqrt(4L+1) z_rms, eps1 = 2^-9 sqrt(2/3), K = 2. Held
# in bf16, the reference has its embeddings rounded too: one rounding of
# the first layer's input more than the derivation counts, smaller than a
# product's (the bound is 2 to 10 times what is observed).
ok "cache: the bf16 reference's log-probs within the bf16 tolerance of the f32 one's, keyed apart" \
	python3 - "$db" "$fx/oracle.json" "$fx/reference/config.json" <<'PY'
import json, math, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
rows = con.execute("SELECT ref_fingerprint, prompt_id, completion_id, logp, ntokens "
                   "FROM reflogp_cache").fetchall()
keys = sorted({r[0] for r in rows})
print("keys:", keys)
if len(keys) != 2 or keys[1] != keys[0] + "+bf16w":
    sys.exit("expected the f32 fingerprint and it with +bf16w")
f32 = {(r[1], r[2]): (r[3], r[4]) for r in rows if r[0] == keys[0]}
b16 = {(r[1], r[2]): (r[3], r[4]) for r in rows if r[0] == keys[1]}
if set(f32) != set(b16) or len(f32) != 10:
    sys.exit("expected the same 10 completions under both keys")
o = json.load(open(sys.argv[2]))
z = [v for row in o["logits_first_seq"] for v in row]
zrms = math.sqrt(sum(v * v for v in z) / len(z))
L = json.load(open(sys.argv[3]))["num_hidden_layers"]
eps1 = 2 ** -9 * math.sqrt(2 / 3)
tok = 4 * math.sqrt(2) * 2 * eps1 * math.sqrt(4 * L + 1) * zrms
worst = biggest = 0
for k, (a, n) in f32.items():
    b, nb = b16[k]
    if n != nb:
        sys.exit("token counts differ: %d vs %d" % (n, nb))
    d = abs(a - b)
    worst = max(worst, d / (tok * math.sqrt(n)))
    biggest = max(biggest, d)
print("tolerance %.3g sqrt(T); worst %.3g of it; max |d| %.3g" % (tok, worst, biggest))
# float32 references agree to 1e-5: more shows the bf16 pass ran
sys.exit(0 if worst <= 1 and biggest > 1e-4 else 1)
PY

mem() { # mem DPO_RUN_JSON: memory.ref_weights and ref_weight_bytes as JSON
	python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))["memory"]
print(m.get("ref_weights"), m.get("ref_weight_bytes"))' "$1"
}
set -- $(mem "$T/f/dpo_run.json")
is "f32: dpo_run.json reports an f32 reference" "$1" f32
f32b=$2
set -- $(mem "$T/b/dpo_run.json")
is "bf16: dpo_run.json reports a bf16 reference" "$1" bf16
# the norm weights (a small share) stay float32
ok "bf16: the reference holds between 50% and 51% of the f32 bytes ($2 vs $f32b)" \
	python3 -c 'import sys; sys.exit(0 if 0.5 * float(sys.argv[2]) < float(sys.argv[1]) < 0.51 * float(sys.argv[2]) else 1)' \
	"$2" "$f32b"
ok "second bf16 run" dpo-train $st --precision bf16 --out "$T/b2"
like "reuses the bf16 reference's log-probs" "$(cat "$T/.err")" "5 from the cache, 0 computed"
done_testing
