#!/bin/sh
# cli_bf16.sh: --precision on dpo-model score/generate, dpo-generate and
# dpo-eval: usage errors (exit 2), bf16 scores of the BF16-stored sharded
# fixture equal to the f32 ones (the weights widen exactly; 1e-5 for the
# summation order), greedy generation of tiny-llama in bf16 giving the
# oracle's ids, auto accepted, the generator identity of dpo-generate
# recording bf16, dpo-eval running in bf16, and a bf16 process holding
# about half the memory of an f32 one.
# Needs ../shared for the fixtures (skipped, saying so, without it).
. "$top_srcdir/tests/tap.sh"

for p in "dpo-model score" "dpo-model generate" dpo-generate dpo-eval; do
	like "$p --help: --precision" "$($p --help)" "--precision P"
done
dpo-model score x --ids-json y --precision f16 >"$T/u.out" 2>"$T/u.err"
is "--precision f16: exit 2" "$?" 2
is "--precision f16: message" "$(head -n 1 "$T/u.err")" \
	'dpo-model score: --precision: expected f32, bf16 or auto, got "f16"'
dpo-generate --model x --precision half >/dev/null 2>&1
is "dpo-generate --precision half: exit 2" "$?" 2
dpo-eval --policy x --baseline x --precision half >/dev/null 2>&1
is "dpo-eval --precision half: exit 2" "$?" 2

if ! have_shared; then
	echo "# SKIP: \$DPO_SHARED ($DPO_SHARED) absent: no fixtures"
	done_testing
fi
F="$DPO_SHARED/fixtures"
S="$F/tiny-llama-bf16-sharded"
sc() { dpo-model score "$S" --prompt "Once upon a time" --completion " there was a cat" "$@"; }
a=$(sc) && b=$(sc --precision bf16) && c=$(sc --precision auto)
is "score: three runs" "$?" 0
if command -v python3 >/dev/null 2>&1; then
	close() {
		python3 -c 'import json,sys
a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2])
assert a["completion_ids"] == b["completion_ids"]
d=max(abs(x-y) for x,y in zip(a["token_logps"], b["token_logps"]))
assert d <= 1e-5, d' "$1" "$2"
	}
	ok "score: bf16 == f32 within 1e-5 on the BF16-stored weights" close "$a" "$b"
	ok "score: auto == f32 within 1e-5" close "$a" "$c"
else
	echo "# python3 absent: scores not compared"
fi

# greedy ids of the oracle (tiny-llama: every one of them holds under bf16)
L="$F/tiny-llama/policy"
if command -v python3 >/dev/null 2>&1; then
	read -r pids want <<EOT
$(python3 -c 'import json,sys
g=json.load(open(sys.argv[1]))["greedy"]
print(",".join(map(str,g["prompt_ids"])), " ".join(map(str,g["new_ids"])))' "$F/tiny-llama/oracle.json")
EOT
	got=$(dpo-model generate "$L" --prompt-ids "$pids" --greedy --max-new-tokens 24 \
		--precision bf16 --json | python3 -c 'import json,sys
print(" ".join(map(str,json.load(sys.stdin)["ids"])))')
	is "generate --greedy --precision bf16: the oracle's 24 ids" "$got" "$want"
fi

# dpo-generate: bf16 is part of the generator's identity
P="$top_srcdir/share/examples/prompts.jsonl"
M="$F/tiny-qwen3/policy"
dpo-db --db "$T/a.db" import "$P" >/dev/null 2>&1
ok "dpo-generate --precision bf16" dpo-generate --model "$M" --db "$T/a.db" --n 1 --limit 2 \
	--max-new-tokens 4 --precision bf16 -q
ok "dpo-generate --precision f32" dpo-generate --model "$M" --db "$T/a.db" --n 1 --limit 2 \
	--max-new-tokens 4 -q
if command -v sqlite3 >/dev/null 2>&1; then
	like "the bf16 generator says so" \
		"$(sqlite3 "$T/a.db" "select params from generators where params like '%bf16%'")" \
		'"precision":"bf16"'
	is "two generators (f32 and bf16)" "$(sqlite3 "$T/a.db" "select count(*) from generators")" 2
fi

# dpo-eval in bf16: the same model twice samples the same tokens, KL exactly 0
out=$(dpo-eval --policy "$M" --baseline "$M" --prompts "$P" --max-new-tokens 4 --samples 1 \
	--json -q --threads 1 --precision bf16)
is "dpo-eval --precision bf16: exit 0" "$?" 0
like "dpo-eval --precision bf16: same model, KL 0" "$out" '"prompts":8,"samples":1,"kl":0,'

# memory: scoring with the model in bf16 holds about half the bytes. Peak
# resident set (GNU time's %M, KiB) of a 19M-parameter Llama (76 MB in
# F32): f32 holds the mmapped file and its 4-byte arena (about 2 x 76 MB);
# bf16 converts tensor by tensor from the file, dropping each one's pages
# once read, into 2 bytes a weight (38 MB).
if [ -x /usr/bin/time ]; then
	cat >"$T/cfg.json" <<EOJ
{"model_type": "llama", "hidden_size": 256, "intermediate_size": 688,
 "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
 "vocab_size": 32000, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
 "tie_word_embeddings": false}
EOJ
	echo '{"prompt_ids": [1, 2, 3], "completion_ids": [4, 5]}' >"$T/ids.json"
	ok "init a 19M-parameter model" dpo-model init --config "$T/cfg.json" --out "$T/big"
	m32=$(/usr/bin/time -f %M dpo-model score "$T/big" --ids-json "$T/ids.json" 2>&1 >/dev/null | tail -n 1)
	m16=$(/usr/bin/time -f %M dpo-model score "$T/big" --ids-json "$T/ids.json" --precision bf16 2>&1 >/dev/null | tail -n 1)
	echo "# peak RSS: f32 $m32 KiB, bf16 $m16 KiB"
	ok "bf16 peak RSS below 0.6 of f32's ($m16 vs $m32 KiB)" test "$((m16 * 100))" -lt "$((m32 * 60))"
fi
done_testing
