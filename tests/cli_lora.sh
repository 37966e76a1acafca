#!/bin/sh
# cli_lora.sh: LoRA with dpo-train (--lora-r ...) and dpo-model (merge-lora,
# --adapter) on the tiny fixtures: usage errors naming the option; a LoRA
# DPO run lowers the loss and raises the reward accuracy from the frozen
# base (step 1 is exactly ln 2: B starts at zero); the adapter's files carry
# PEFT's keys and shapes (read with python3 from the safetensors header);
# the merged model scores as the unmerged adapter within 1e-5 and its
# weights are PEFT's merge computed in python from the files; merge-lora
# refuses to write over the base; dpo-eval takes an adapter folder; resume
# repeats the run exactly (dropout included) and refuses a changed LoRA
# setting. With --precision bf16 the frozen base is held in bf16 only
# (its bytes and the peak RSS show it), is the reference (step 1 is ln 2)
# and the adapter is PEFT's as in f32.
. "$top_srcdir/tests/tap.sh"
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMP_WAIT_POLICY
have_shared || skip_all "no ../shared fixtures"
command -v python3 >/dev/null || skip_all "no python3"
cmp="$top_builddir/tests/test_trainer_cmp"
fl="$DPO_SHARED/fixtures/tiny-llama"
fg="$DPO_SHARED/fixtures/tiny-gpt2"
"$cmp" pairs "$fl/oracle.json" >"$T/pl.jsonl"
"$cmp" pairs "$fg/oracle.json" >"$T/pg.jsonl"
common="--beta 0.1 --schedule constant --no-append-eos --quiet"

# usage errors name the option (exit 2)
dpo-train --from-jsonl "$T/pl.jsonl" --model "$fl/policy" --out "$T/x" --lora-r 0 2>"$T/err"
is "--lora-r 0: exit 2" "$?" 2
like "names --lora-r" "$(cat "$T/err")" "--lora-r"
dpo-train --from-jsonl "$T/pl.jsonl" --model "$fl/policy" --out "$T/x" --lora-r 4 --lora-dropout 1 2>"$T/err"
is "--lora-dropout 1: exit 2" "$?" 2
like "names --lora-dropout" "$(cat "$T/err")" "--lora-dropout"
dpo-train --from-jsonl "$T/pl.jsonl" --model "$fl/policy" --out "$T/x" --lora-r 4 --lora-targets q_proj,c_attn 2>"$T/err"
is "a GPT-2 module on a Llama model: exit 2" "$?" 2
like "names the option and the module" "$(cat "$T/err")" '--lora-targets: "c_attn" is no linear module of a llama model'
dpo-train --from-jsonl "$T/pl.jsonl" --model "$fl/policy" --out "$T/x" --lora-r 4 --lora-targets lm_head 2>"$T/err"
is "lm_head: exit 2" "$?" 2
dpo-train --from-jsonl "$T/pl.jsonl" --model "$fl/policy" --out "$T/x" --lora-targets q_proj 2>"$T/err"
is "--lora-targets without --lora-r: exit 2" "$?" 2
like "says what is missing" "$(cat "$T/err")" "--lora-targets needs --lora-r R"
dpo-train --from-jsonl "$T/pl.jsonl" --model "$fl/policy" --out "$T/x" --lora-alpha 16 2>"$T/err"
is "--lora-alpha without --lora-r: exit 2" "$?" 2
ok "no adapter written" test ! -e "$T/x/adapter_model.safetensors"

# a LoRA DPO run on the Llama fixture: the policy starts as the reference
ok "LoRA run (llama, all-linear)" dpo-train --from-jsonl "$T/pl.jsonl" --model "$fl/policy" $common \
	--lr 1e-2 --lora-r 4 --lora-alpha 8 --lora-targets all-linear --steps 15 --batch-size 5 \
	--log-json "$T/l.log" --out "$T/l"
ok "loss starts at ln 2 (B = 0: the policy is the frozen base), then falls; accuracy rises" \
	python3 - "$T/l.log" <<'EOF'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
a, b = rows[0], rows[-1]
assert abs(a["loss"] - math.log(2)) < 1e-6, a["loss"]
assert b["loss"] < 0.5 * a["loss"], (a["loss"], b["loss"])
assert b["rewards/accuracies"] > a["rewards/accuracies"], (a, b)
EOF
ok "the output is the adapter, not a model" test ! -e "$T/l/model.safetensors" -a -s "$T/l/tokenizer.json"
cat >"$T/keys.py" <<'EOF'
# keys.py ADAPTER_DIR BASE_DIR: the adapter's tensors are exactly PEFT's
# lora_A [r, in] / lora_B [out, r] of each targeted module of the base
import json, struct, sys
d, base = sys.argv[1], sys.argv[2]
cfg = json.load(open(d + "/adapter_config.json"))
for k, v in {"peft_type": "LORA", "bias": "none", "task_type": "CAUSAL_LM", "use_dora": False}.items():
    assert cfg[k] == v, (k, cfg[k])
r = cfg["r"]
f = open(d + "/adapter_model.safetensors", "rb")
n = struct.unpack("<Q", f.read(8))[0]
hdr = json.loads(f.read(n))
hdr.pop("__metadata__", None)
f = open(base + "/model.safetensors", "rb")
n = struct.unpack("<Q", f.read(8))[0]
bh = json.loads(f.read(n))
bh.pop("__metadata__", None)
conv = cfg["fan_in_fan_out"]  # GPT-2 Conv1D weights are [in, out]
want = {}
for name, t in bh.items():
    if not name.endswith(".weight") or len(t["shape"]) != 2:
        continue
    mod = name[: -len(".weight")]
    if mod.split(".")[-1] not in cfg["target_modules"]:
        continue
    if not mod.startswith(("model.", "transformer.")):
        mod = "transformer." + mod
    o, i = t["shape"][::-1] if conv else t["shape"]
    want["base_model.model.%s.lora_A.weight" % mod] = [r, i]
    want["base_model.model.%s.lora_B.weight" % mod] = [o, r]
got = {k: v["shape"] for k, v in hdr.items()}
assert want and got == want, (sorted(got), sorted(want))
assert all(v["dtype"] == "F32" for v in hdr.values())
print(len(got), "tensors")
EOF
ok "llama adapter: PEFT keys and shapes for every module" python3 "$T/keys.py" "$T/l" "$fl/policy"
like "llama: base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight" \
	"$(head -c 4000 "$T/l/adapter_model.safetensors" | tr -d '\000')" "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
ok "llama adapter_config: all-linear saved as the module list, fan_in_fan_out false" python3 -c "
import json, sys; c = json.load(open(sys.argv[1]))
assert c['target_modules'] == ['q_proj','k_proj','v_proj','o_proj','gate_proj','up_proj','down_proj'], c
assert c['r'] == 4 and c['lora_alpha'] == 8 and c['fan_in_fan_out'] is False, c" "$T/l/adapter_config.json"

# GPT-2: Conv1D modules, both c_proj (attention and MLP)
ok "LoRA run (gpt2, c_attn,c_proj,c_fc)" dpo-train --from-jsonl "$T/pg.jsonl" --model "$fg/policy" $common \
	--lr 1e-2 --lora-r 2 --lora-alpha 4 --lora-targets c_attn,c_proj,c_fc --steps 4 --batch-size 5 --out "$T/g"
ok "gpt2 adapter: PEFT keys and shapes, fan_in_fan_out true" python3 "$T/keys.py" "$T/g" "$fg/policy"
like "gpt2: base_model.model.transformer.h.N.attn.c_attn.lora_A.weight" \
	"$(head -c 4000 "$T/g/adapter_model.safetensors" | tr -d '\000')" "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"

# merged == unmerged, and the unmerged adapter changes the scores
echo '{"prompt_ids": [1, 5, 9, 22], "completion_ids": [7, 8, 30, 41, 2, 17, 3]}' >"$T/ids.json"
cat >"$T/close.py" <<'EOF'
import json, sys
a, b = (json.load(open(p))["token_logps"] for p in sys.argv[1:3])
tol = float(sys.argv[3])
d = max(abs(x - y) for x, y in zip(a, b))
assert len(a) == len(b) and (d <= tol if tol > 0 else d > -tol), d
EOF
for m in l g; do
	base=$fl/policy
	[ $m = g ] && base=$fg/policy
	ok "$m: merge-lora" dpo-model merge-lora "$base" "$T/$m" --out "$T/$m-merged"
	dpo-model score "$base" --ids-json "$T/ids.json" >"$T/$m-base.json"
	dpo-model score "$base" --adapter "$T/$m" --ids-json "$T/ids.json" >"$T/$m-adapter.json"
	dpo-model score "$T/$m-merged" --ids-json "$T/ids.json" >"$T/$m-merged.json"
	ok "$m: merged log-probs equal the unmerged adapter's within 1e-5" \
		python3 "$T/close.py" "$T/$m-adapter.json" "$T/$m-merged.json" 1e-5
	ok "$m: the adapter changes the log-probs" python3 "$T/close.py" "$T/$m-adapter.json" "$T/$m-base.json" -1e-3
done
# the merged weights follow PEFT's definition, computed here from the files:
# W + lora_alpha/r * B A, transposed for GPT-2's Conv1D (fan_in_fan_out)
cat >"$T/peft_merge.py" <<'PY'
import json, struct, sys
def load(path):
    f = open(path, "rb")
    n = struct.unpack("<Q", f.read(8))[0]
    hdr = json.loads(f.read(n))
    data = f.read()
    out = {}
    for k, t in hdr.items():
        if k == "__metadata__":
            continue
        assert t["dtype"] == "F32", (k, t["dtype"])
        b, e = t["data_offsets"]
        out[k] = (t["shape"], struct.unpack("<%df" % ((e - b) // 4), data[b:e]))
    return out
ad, base, merged = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = json.load(open(ad + "/adapter_config.json"))
s = cfg["lora_alpha"] / cfg["r"]
A = load(ad + "/adapter_model.safetensors")
W0, W1 = load(base + "/model.safetensors"), load(merged + "/model.safetensors")
worst, n = 0.0, 0
for k in A:
    if ".lora_A." not in k:
        continue
    mod = k[len("base_model.model."):-len(".lora_A.weight")]
    (r, i), a = A[k]
    (o, _), b = A[k.replace(".lora_A.", ".lora_B.")]
    name = mod + ".weight"
    if name not in W0:
        name = name[len("transformer."):]
    shape, w0 = W0[name]
    w1 = W1[name][1]
    for oo in range(o):
        for ii in range(i):
            d = s * sum(b[oo * r + k2] * a[k2 * i + ii] for k2 in range(r))
            idx = ii * o + oo if cfg["fan_in_fan_out"] else oo * i + ii
            worst = max(worst, abs(w0[idx] + d - w1[idx]))
    n += 1
assert n > 0 and worst < 1e-5, (n, worst)
print(n, "modules, worst", worst)
PY
ok "llama: merged weights = W + alpha/r B A (PEFT's merge, from the files)" \
	python3 "$T/peft_merge.py" "$T/l" "$fl/policy" "$T/l-merged"
ok "gpt2: merged weights = W + alpha/r (B A)^T for Conv1D (fan_in_fan_out)" \
	python3 "$T/peft_merge.py" "$T/g" "$fg/policy" "$T/g-merged"
ok "generate --adapter samples as the merged model" sh -c "
	a=\$(dpo-model generate '$fl/policy' --adapter '$T/l' --prompt-ids '1 5 9' --max-new-tokens 8 --seed 3 --json)
	b=\$(dpo-model generate '$T/l-merged' --prompt-ids '1 5 9' --max-new-tokens 8 --seed 3 --json)
	[ \"\$(echo \"\$a\" | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"ids\"])')\" = \
	  \"\$(echo \"\$b\" | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"ids\"])')\" ]"
cp -r "$fl/policy" "$T/base"
dpo-model merge-lora "$T/base" "$T/l" --out "$T/base" 2>"$T/err"
is "merge-lora --out BASE: exit 1" "$?" 1
like "says why" "$(cat "$T/err")" "refusing to write the output over the input"
ok "the base is untouched" cmp "$T/base/model.safetensors" "$fl/policy/model.safetensors"
dpo-model merge-lora "$fl/policy" "$T/l" --out "$T/l-merged" 2>"$T/err"
is "merge-lora over a non-empty folder: exit 1" "$?" 1
ok "no temporary folder left" test -z "$(ls "$T" | grep 'l-merged.tmp')"
dpo-model score "$fl/policy" --adapter "$T/g" --ids-json "$T/ids.json" 2>"$T/err" >/dev/null
is "a GPT-2 adapter on a Llama model: exit 1" "$?" 1
like "names the file" "$(cat "$T/err")" "adapter_config.json"

# dpo-eval takes the adapter's folder as a policy (its base + the adapter)
printf '{"prompt": "hello there"}\n{"prompt": "one two"}\n' >"$T/prompts.jsonl"
ok "dpo-eval --policy ADAPTER_DIR" sh -c "dpo-eval --policy '$T/l' --baseline '$fl/policy' --prompts '$T/prompts.jsonl' \
	--max-new-tokens 8 --json >'$T/ev.json'"
ok "a KL to the base that is not 0" python3 -c "
import json, sys; assert json.load(open(sys.argv[1]))['kl'] != 0" "$T/ev.json"

# checkpoints: resume repeats the run (dropout masks too); a changed LoRA setting is refused
run="--from-jsonl $T/pl.jsonl $common --lr 1e-2 --schedule linear --lora-r 4 --lora-alpha 8 --lora-dropout 0.2 \
--lora-targets q_proj,v_proj,down_proj --steps 7 --batch-size 2 --seed 3"
ok "run with checkpoints" dpo-train $run --model "$fl/policy" --save-every 3 --log-json "$T/a.log" --out "$T/a"
ok "a checkpoint holds the adapter, not the base" \
	test -s "$T/a/checkpoint-6/adapter_model.safetensors" -a ! -e "$T/a/checkpoint-6/model.safetensors"
ok "resume (the base from the checkpoint's adapter_config.json)" \
	dpo-train $run --resume "$T/a/checkpoint-6" --log-json "$T/b.log" --out "$T/b"
ok "resumed steps equal the uninterrupted run" "$cmp" same "$T/a.log" "$T/b.log"
ok "same final adapter" cmp "$T/a/adapter_model.safetensors" "$T/b/adapter_model.safetensors"
dpo-train $run --lora-r 8 --lora-dropout 0 --resume "$T/a/checkpoint-6" --out "$T/c" 2>"$T/err"
is "resume with another --lora-r: exit 1" "$?" 1
like "names the LoRA options" "$(cat "$T/err")" "--lora-r 8 (checkpoint: 4), --lora-dropout 0 (checkpoint: 0.2)"
# --force cannot change them: the resumed adapter would keep the
# checkpoint's rank while the run reported and recorded the new one
dpo-train $run --lora-r 8 --lora-alpha 16 --resume "$T/a/checkpoint-6" --force --out "$T/c1" 2>"$T/err"
is "resume --force with another --lora-r and --lora-alpha: exit 1" "$?" 1
like "... says --force cannot change them" "$(cat "$T/err")" \
	"--lora-r 8 (checkpoint: 4), --lora-alpha 16 (checkpoint: 8); a resumed adapter keeps the checkpoint's rank, alpha, dropout and modules (--force cannot change them)"
ok "... and writes no output" test ! -e "$T/c1"
ok "resume --force still changes other options" dpo-train $run --lr 2e-2 --resume "$T/a/checkpoint-6" --force \
	--out "$T/c2"
# activation checkpointing recomputes the adapters' forward too (dropout
# masks are a hash of the element, so the recompute draws the same)
ok "with --gradient-checkpointing" dpo-train $run --model "$fl/policy" --gradient-checkpointing \
	--log-json "$T/gc.log" --out "$T/gc"
ok "... the same losses" "$cmp" same "$T/a.log" "$T/gc.log"
ok "... the same adapter, byte for byte" cmp "$T/a/adapter_model.safetensors" "$T/gc/adapter_model.safetensors"
# bf16 matmuls with an adapter train too (the loss falls as in f32)
ok "with --precision bf16" dpo-train $run --model "$fl/policy" --precision bf16 --log-json "$T/bf.log" --out "$T/bf"
# (0.05: the bound tests/test_trainer_bf16.c derives for an 8-step run's losses)
ok "... its losses differ from the f32 run's, within bf16 rounding (0 < d <= 0.05)" python3 -c '
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1])]
b = [json.loads(l)["loss"] for l in open(sys.argv[2])]
d = max(abs(x - y) for x, y in zip(a, b))
print("# worst loss difference %.3g" % d)
sys.exit(0 if len(a) == len(b) == 7 and 0 < d <= 0.05 else 1)' "$T/a.log" "$T/bf.log"
ok "... and the run says it was bf16 (not the same f32 run: the losses differ above)" \
	grep -q '"precision":[[:space:]]*"bf16"' "$T/bf/dpo_run.json"
# with --precision bf16 the frozen base is held in bf16 only (2 bytes a
# matrix weight, 4 a norm weight; the f32 run holds 4 a weight): counted
# here from the base's safetensors header
cat >"$T/bytes.py" <<'EOF'
import json, struct, sys
run, base, prec = sys.argv[1], sys.argv[2], sys.argv[3]
f = open(base + "/model.safetensors", "rb")
hdr = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
hdr.pop("__metadata__", None)
n2 = sum(t["shape"][0] * t["shape"][1] for t in hdr.values() if len(t["shape"]) == 2)
n1 = sum(t["shape"][0] for t in hdr.values() if len(t["shape"]) == 1)
mem = json.load(open(run + "/dpo_run.json"))["memory"]
want = 2 * n2 + 4 * n1 if prec == "bf16" else 4 * (n2 + n1)
assert mem["weights"] == prec and mem["weight_bytes"] == want, (mem, want)
EOF
ok "... the base held in bf16: the run's weight bytes are 2 per matrix weight" \
	python3 "$T/bytes.py" "$T/bf" "$fl/policy" bf16
ok "... (and the f32 run's 4 per weight)" python3 "$T/bytes.py" "$T/a" "$fl/policy" f32
ok "... the reference is that frozen bf16 base: step 1 is exactly ln 2 (B = 0)" python3 -c '
import json, math, sys
a = json.loads(open(sys.argv[1]).readline())
assert abs(a["loss"] - math.log(2)) < 1e-6 and a["rewards/chosen"] == 0, a' "$T/bf.log"
ok "... the adapter has PEFT's keys and shapes" python3 "$T/keys.py" "$T/bf" "$fl/policy"
ok "bf16: run with checkpoints" dpo-train $run --model "$fl/policy" --precision bf16 --save-every 3 --out "$T/bfc"
ok "bf16: resume (the base loaded in bf16 again)" dpo-train $run --precision bf16 --resume "$T/bfc/checkpoint-6" \
	--log-json "$T/bfr.log" --out "$T/bfr"
ok "... resumed steps equal the uninterrupted bf16 run" "$cmp" same "$T/bf.log" "$T/bfr.log"
ok "... same final adapter" cmp "$T/bf/adapter_model.safetensors" "$T/bfr/adapter_model.safetensors"
# GPT-2 (tied LM head = wte, learned positions, biases) on a bf16 base
ok "GPT-2 LoRA with --precision bf16" dpo-train --from-jsonl "$T/pg.jsonl" --model "$fg/policy" $common \
	--lr 1e-2 --lora-r 2 --lora-alpha 4 --lora-targets c_attn,c_proj,c_fc --steps 4 --batch-size 5 \
	--precision bf16 --log-json "$T/gb.log" --out "$T/gb"
ok "... base in bf16 (bytes), PEFT adapter" sh -c "python3 '$T/bytes.py' '$T/gb' '$fg/policy' bf16 &&
	python3 '$T/keys.py' '$T/gb' '$fg/policy'"
ok "... step 1 exactly ln 2, then the loss falls" python3 -c '
import json, math, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1])]
assert abs(a[0] - math.log(2)) < 1e-6 and a[-1] < a[0], a' "$T/gb.log"
# memory, measured: the peak RSS (GNU time's %M, KiB) of a LoRA bf16 run on
# a 56M-parameter Llama (4 layers of width 1024) stays below the f32 bytes
# of its weights alone (227 MB; bf16 holds 113 MB, the rest of the peak is
# about 40 MB), which it could not with an f32 copy of the base. Not in an
# ASan build: its shadow memory and quarantine of freed blocks add to RSS.
asan=no
ldd "$(command -v dpo-train)" 2>/dev/null | grep -q libasan && asan=yes
[ $asan = yes ] && echo "# the LoRA bf16 peak RSS check is skipped: dpo-train is an ASan build"
if [ -x /usr/bin/time ] && [ $asan = no ]; then
	cat >"$T/cfg.json" <<EOJ
{"model_type": "llama", "hidden_size": 1024, "intermediate_size": 3072,
 "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 8,
 "vocab_size": 1024, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
 "tie_word_embeddings": false}
EOJ
	dpo-model init --config "$T/cfg.json" --tokenizer "$fl/policy" --out "$T/big" >/dev/null 2>&1
	big="--from-jsonl $T/pl.jsonl $common --lora-r 4 --steps 1 --batch-size 1 --max-length 32 --model $T/big"
	m16=$(/usr/bin/time -f %M dpo-train $big --precision bf16 --out "$T/big16" 2>&1 | tail -n 1)
	m32=$(/usr/bin/time -f %M dpo-train $big --out "$T/big32" 2>&1 | tail -n 1)
	w32=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["memory"]["weight_bytes"] // 1024)' \
		"$T/big32/dpo_run.json")
	echo "# peak RSS: LoRA f32 $m32 KiB, bf16 $m16 KiB; f32 weights $w32 KiB"
	ok "LoRA bf16 peak RSS ($m16 KiB) below the base's f32 bytes ($w32 KiB)" test "$m16" -lt "$w32"
fi
ok "dropout changes the run" dpo-train $run --model "$fl/policy" --lora-dropout 0 --log-json "$T/d.log" --out "$T/d"
fails "(its losses differ)" "$cmp" same "$T/a.log" "$T/d.log"
done_testing
