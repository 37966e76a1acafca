#!/bin/sh
# cli_chat_template.sh: the model's own chat template through the programs
# (issue #18): dpo-model render against the chat-templates oracle (Qwen3
# with enable_thinking set by --chat-var, Gemma's refusal), --json's
# completion mask, dpo-train --show-example masking exactly the assistant
# turn of a conversational pair, and --chat-var's usage errors. The model
# is tiny-qwen3's with the fixtures' Qwen3 (or Gemma) template beside it.
. "$top_srcdir/tests/tap.sh"
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMP_WAIT_POLICY

for p in dpo-model dpo-generate dpo-eval dpo-train; do
	case $p in dpo-model) h=$(dpo-model generate --help) ;; *) h=$($p --help) ;; esac
	like "$p: --chat-var in --help" "$h" "--chat-var NAME=VALUE"
done
like "dpo-model render in --help" "$(dpo-model --help)" "render DIR --messages FILE"
dpo-model render x >/dev/null 2>&1; is "render without --messages: exit 2" "$?" 2
dpo-model render x --messages - --chat-var messages=1 </dev/null >/dev/null 2>"$T/err"
is "--chat-var messages=...: exit 2" "$?" 2
like "... says why" "$(cat "$T/err")" "set by the renderer"
dpo-model render x --messages - --chat-var novalue </dev/null >/dev/null 2>&1
is "--chat-var without =: exit 2" "$?" 2
dpo-train --from-jsonl x --model x --out "$T/o" --chat-var 9x=1 >/dev/null 2>&1
is "dpo-train --chat-var 9x=1: exit 2" "$?" 2

if ! have_shared; then
	echo "# SKIP: \$DPO_SHARED ($DPO_SHARED) absent: no model, no oracle"
	done_testing
fi
F="$DPO_SHARED/fixtures"
CT="$F/chat-templates"
# a model folder: tiny-qwen3's files with the real Qwen3 template beside them
mkdir "$T/q3" "$T/gemma"
for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json; do
	ln -s "$F/tiny-qwen3/policy/$f" "$T/q3/$f"
	ln -s "$F/tiny-qwen3/policy/$f" "$T/gemma/$f"
done
cp "$CT/Qwen-Qwen3-0.6B.jinja" "$T/q3/chat_template.jinja"
cp "$CT/google-gemma-2-2b-it.jinja" "$T/gemma/chat_template.jinja"

if command -v python3 >/dev/null 2>&1; then
	# every Qwen3 case of the oracle: messages, settings, expected text
	python3 - "$CT/oracle.json" "$T" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
k = 0
with open(sys.argv[2] + "/cases", "w") as idx:
    for c in d["cases"]:
        if c["template"] != "Qwen-Qwen3-0.6B.jinja":
            continue
        k += 1
        base = "%s/case%d" % (sys.argv[2], k)
        json.dump(c["messages"], open(base + ".json", "w"), ensure_ascii=False)
        open(base + ".want", "wb").write(c["text"].encode())
        opts = []
        if c["add_generation_prompt"]:
            opts.append("--generation-prompt")
        if "enable_thinking" in c["extra"]:
            opts.append("--chat-var enable_thinking=%s" % ("true" if c["extra"]["enable_thinking"] else "false"))
        idx.write("%d %s\n" % (k, " ".join(opts)))
EOF
	n=0
	bad=0
	while read -r k opts; do
		n=$((n + 1))
		# shellcheck disable=SC2086
		dpo-model render "$T/q3" --messages "$T/case$k.json" $opts >"$T/case$k.got" 2>"$T/err" &&
			cmp -s "$T/case$k.got" "$T/case$k.want" || {
			bad=$((bad + 1))
			echo "# case $k ($opts) differs: $(cat "$T/err")"
		}
	done <"$T/cases"
	is "dpo-model render: the $n Qwen3 oracle cases byte for byte" "$bad/$n" "0/36"
else
	echo "# python3 not installed: the oracle cases are not compared here (test_jinja does)"
fi

# --json: the completion is exactly the final assistant turn
printf '%s' '[{"role":"user","content":"Q"},{"role":"assistant","content":"A"}]' >"$T/qa.json"
out=$(dpo-model render "$T/q3" --messages "$T/qa.json" --json)
like "--json: the text" "$out" '"text":"<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nA<|im_end|>\n"'
printf '%s' "$out" | sed 's/.*"ids":\[\([^]]*\)\].*/\1/' | tr ',' '\n' >"$T/ids"
printf '%s' "$out" | sed 's/.*"completion_mask":\[\([^]]*\)\].*/\1/' | tr ',' '\n' >"$T/mask"
comp=$(paste -d' ' "$T/ids" "$T/mask" | awk '$2 == 1 { printf "%s%s", s, $1; s = " " }')
prompt=$(paste -d' ' "$T/ids" "$T/mask" | awk '$2 == 0 { printf "%s%s", s, $1; s = " " }')
is "--json: the masked tokens are the assistant turn" "$(dpo-model detokenize "$T/q3" "$comp")" \
	"$(printf '<think>\n\n</think>\n\nA<|im_end|>')"
is "--json: the rest is the prompt with the generation prompt" "$(dpo-model detokenize "$T/q3" "$prompt")" \
	"$(printf '<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant')"
like "--json: counts" "$out" ',"prompt_tokens":'
like "--json: ... and completion_tokens" "$out" ',"completion_tokens":'
out=$(dpo-model render "$T/q3" --messages "$T/qa.json" --json --chat-var enable_thinking=false)
like "--json, enable_thinking=false: the empty thought is the prompt's" "$out" \
	'"text":"<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nA<|im_end|>\n"'
mask=$(printf '%s' "$out" | sed 's/.*"completion_mask":\[\([^]]*\)\].*/\1/' | tr ',' '\n' | grep -c 1)
printf 'A<|im_end|>\n' >"$T/a.txt"
ids=$(dpo-model tokenize "$T/q3" --file "$T/a.txt" | wc -w)
is "--json, enable_thinking=false: only A<|im_end|>\\n is the completion" "$mask" "$ids"

# a final turn that is no continuation of the prompt has no completion to mask
if [ -f "$T/case36.json" ]; then
	dpo-model render "$T/q3" --messages "$T/case36.json" --json --chat-var enable_thinking=false \
		>/dev/null 2>"$T/err"
	is "--json, reasoning the template drops from the prompt: exit 1" "$?" 1
	like "... says why" "$(cat "$T/err")" "not render the final assistant turn as a continuation"
fi

# the template's own refusal is the error
printf '%s' '[{"role":"system","content":"S"},{"role":"user","content":"Hi"}]' >"$T/sys.json"
dpo-model render "$T/gemma" --messages "$T/sys.json" >/dev/null 2>"$T/err"
is "gemma + system: exit 1" "$?" 1
like "... with the template's message" "$(cat "$T/err")" "chat_template:1: System role not supported"
out=$(dpo-model render "$T/gemma" --messages "$T/sys.json" --chat-format chatml)
like "--chat-format chatml: the built-in renderer instead" "$out" "<|im_start|>system"

# dpo-train: a conversational pair's chosen tokens are exactly the assistant turn
printf '%s\n' '{"prompt":[{"role":"user","content":"Q"}],"chosen":[{"role":"assistant","content":"A"}],"rejected":[{"role":"assistant","content":"B"}]}' \
	'{"prompt":[{"role":"user","content":"R"}],"chosen":[{"role":"assistant","content":"C"}],"rejected":[{"role":"assistant","content":"D"}]}' >"$T/conv.jsonl"
train() { dpo-train --from-jsonl "$T/conv.jsonl" --model "$T/q3" --steps 1 --batch-size 2 --no-append-eos --show-example --quiet "$@"; }
train --out "$T/t1" 2>"$T/err"
is "dpo-train --show-example: exit 0" "$?" 0
like "the prompt ends with the generation prompt" "$(cat "$T/err")" \
	"$(printf 'tokens) ---\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n\n--- chosen (')"
like "the chosen tokens are the assistant turn" "$(cat "$T/err")" \
	"$(printf 'tokens) ---\n<think>\n\n</think>\n\nA<|im_end|>\n\n--- rejected (')"
train --out "$T/t2" --chat-var enable_thinking=false 2>"$T/err"
like "enable_thinking=false: chosen is A<|im_end|> only" "$(cat "$T/err")" \
	"$(printf 'tokens) ---\nA<|im_end|>\n\n--- rejected (')"
like "... and the template is named" "$(cat "$T/err")" "chat template: jinja:"
done_testing
