#!/bin/sh
# cli_model.sh: dpo-model end to end (init, info, score, generate, tokenize,
# errors). Parts using ../shared are skipped, saying so, when it is absent.
. "$top_srcdir/tests/tap.sh"
D="$top_srcdir/tests/data/model"

ok "--help exits 0" dpo-model --help
like "--help lists the commands" "$(dpo-model --help)" "generate DIR"
ok "--version exits 0" dpo-model --version
dpo-model >/dev/null 2>&1; is "no command: exit 2" "$?" 2
dpo-model frobnicate >/dev/null 2>&1; is "unknown command: exit 2" "$?" 2
dpo-model info >/dev/null 2>&1; is "info without a folder: exit 2" "$?" 2
dpo-model generate "$T/none" --top-p 2 --prompt-ids 1 >/dev/null 2>&1
is "bad --top-p: exit 2" "$?" 2

# init: deterministic, HF layout
ok "init llama" dpo-model init --config "$D/llama-tiny.json" --out "$T/a" --seed 7
ok "init again, same seed" dpo-model init --config "$D/llama-tiny.json" --out "$T/b" --seed 7
ok "init, other seed" dpo-model init --config "$D/llama-tiny.json" --out "$T/c" --seed 8
ok "same seed, identical weights" cmp "$T/a/model.safetensors" "$T/b/model.safetensors"
fails "other seed, other weights" cmp "$T/a/model.safetensors" "$T/c/model.safetensors"
ok "config.json written" test -s "$T/a/config.json"
dpo-model init --config "$D/t5.json" --out "$T/t5" 2>"$T/err"; rc=$?
is "unsupported architecture: exit 1" "$rc" 1
like "error names the file and the architecture" "$(cat "$T/err")" "t5.json: unsupported architecture \"t5\""

out=$(dpo-model info "$T/a")
like "info: architecture" "$out" "architecture:      llama"
like "info: parameters" "$out" "parameters:        223552"
out=$(dpo-model info --json "$T/a")
like "info --json: one object" "$out" '"architecture":"llama","parameters":223552,"dtype":"F32"'
dpo-model info "$T/missing" 2>"$T/err"; rc=$?
is "missing folder: exit 1" "$rc" 1
like "missing folder: message names config.json" "$(cat "$T/err")" "missing/config.json"

# score with ids (no tokenizer needed)
printf '{"prompt_ids":[1,2,3],"completion_ids":[4,5]}' >"$T/ids.json"
out=$(dpo-model score "$T/a" --ids-json "$T/ids.json" --threads 1)
like "score: two per-token log-probs" "$out" '"completion_tokens":2,"token_logps":['
like "score: a sum" "$out" '"logp_sum":-'
printf '{"prompt_ids":[1,2,3],"completion_ids":[4,5000]}' >"$T/bad.json"
dpo-model score "$T/a" --ids-json "$T/bad.json" >/dev/null 2>"$T/err"; rc=$?
is "score: id out of range: exit 1" "$rc" 1
like "score: id out of range message" "$(cat "$T/err")" "out of range"
dpo-model score "$T/a" >/dev/null 2>&1; is "score without input: exit 2" "$?" 2

# generate with ids: same seed same output
g1=$(dpo-model generate "$T/a" --prompt-ids 1,2,3 --seed 5 --temperature 0.8 --top-k 50 --max-new-tokens 10 --json)
g2=$(dpo-model generate "$T/a" --prompt-ids 1,2,3 --seed 5 --temperature 0.8 --top-k 50 --max-new-tokens 10 --json --threads 1)
ids1=$(printf '%s' "$g1" | sed 's/.*"ids":\(\[[^]]*\]\).*/\1/')
ids2=$(printf '%s' "$g2" | sed 's/.*"ids":\(\[[^]]*\]\).*/\1/')
is "generate: same seed, same ids" "$ids1" "$ids2"
like "generate: finish reason" "$g1" '"finish_reason":"'

if ! have_shared; then
	echo "# SKIP: \$DPO_SHARED ($DPO_SHARED) absent: oracle checks skipped"
	done_testing
fi
F="$DPO_SHARED/fixtures"

# oracle: tiny-llama pair 0 (fixtures/tiny-llama/oracle.json)
printf '{"prompt_ids":[57,74,271,295,266,273,671,281,277,304,544,84,289,315,33],"completion_ids":[493,273,671,281,277,304,544,84,289,315,295,498,294,269,16]}' >"$T/p0.json"
out=$(dpo-model score "$F/tiny-llama/policy" --ids-json "$T/p0.json")
sum=$(printf '%s' "$out" | sed 's/.*"logp_sum":\([-0-9.e]*\).*/\1/')
ok "score --ids-json: policy_logps_chosen[0] within 1e-3 ($sum)" \
	awk -v s="$sum" 'BEGIN { d = s - (-104.75509982963598); exit !(d < 1e-3 && d > -1e-3) }'
out=$(dpo-model generate "$F/tiny-llama/policy" --prompt-ids 57,74,271,295,266,273,671,281,277,304,544,84,289,315,33 --greedy --max-new-tokens 24 --json)
like "generate --greedy: the oracle's 24 ids" "$out" '"ids":[73,341,237,73,624,918,73,994,528,496,381,627,268,592,554,55,237,237,237,831,253,906,720,195]'
out=$(dpo-model info --json "$F/tiny-llama-bf16-sharded")
like "info: BF16 sharded" "$out" '"dtype":"BF16"'

# text in and out (the tokenizer of train/tokenizer.h)
out=$(dpo-model score "$F/tiny-llama/policy" --prompt "What is the capital of France?" --completion " The capital of France is Paris.")
sum=$(printf '%s' "$out" | sed 's/.*"logp_sum":\([-0-9.e]*\).*/\1/')
ok "score --prompt/--completion: policy_logps_chosen[0] within 1e-3 ($sum)" \
	awk -v s="$sum" 'BEGIN { d = s - (-104.75509982963598); exit !(d < 1e-3 && d > -1e-3) }'
out=$(dpo-model generate "$F/tiny-llama/policy" --prompt "What is the capital of France?" --greedy --max-new-tokens 24 --json)
like "generate --prompt text: same greedy ids" "$out" '"ids":[73,341,237,73,624,918,73,994'
out=$(dpo-model tokenize "$DPO_SHARED/data/models/gpt2-tokenizer-hf" "Hello world")
is "tokenize: real GPT-2 'Hello world'" "$out" "15496 995"
out=$(dpo-model detokenize "$DPO_SHARED/data/models/gpt2-tokenizer-hf" "15496,995")
is "detokenize: real GPT-2" "$out" "Hello world"
out=$(dpo-model generate "$F/tiny-qwen3/policy" --prompt "Hi" --chat --greedy --max-new-tokens 5 --json)
like "generate --chat (ChatML)" "$out" '"finish_reason":"'
out=$(dpo-model generate "$F/tiny-llama/policy" --prompt "What is the capital of France?" --greedy --max-new-tokens 24 --stop "or" --json)
like "generate --stop: finish reason stop" "$out" '"finish_reason":"stop"'
like "generate --stop: text cut before the stop string" "$out" '"text":"g "'
ok "init --tokenizer copies tokenizer files" \
	dpo-model init --config "$D/llama-tiny.json" --out "$T/tok" --tokenizer "$F/tiny-llama/policy"
ok "copied tokenizer.json" test -s "$T/tok/tokenizer.json"
ok "copied generation_config.json (every file dpo-train carries over)" \
	cmp "$F/tiny-llama/policy/generation_config.json" "$T/tok/generation_config.json"
ok "no temporary file left" test -z "$(ls -A "$T/tok" | grep '\.tmp\.')"
out=$(dpo-model tokenize "$T/tok" "What is")
is "tokenize with the copied tokenizer" "$out" "57 74 271 295"
ok "import-llama2c stories260K" \
	dpo-model import-llama2c "$DPO_SHARED/data/models/stories260K/stories260K.bin" --out "$T/s260"
out=$(dpo-model generate "$T/s260" --prompt-ids 1 --greedy --max-new-tokens 8 --json)
like "imported model: greedy ids from BOS (\"Once upon a time\")" "$out" '"ids":[403,407,261,378'
done_testing
