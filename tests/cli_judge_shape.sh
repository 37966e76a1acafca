#!/bin/sh
# dpo-judge's requests per model family (#15): the fake server records every
# body; reasoning models get max_completion_tokens and no temperature,
# --reasoning-effort, --system, --extra-body, --models; Azure OpenAI's URL and
# key header; reasoning tokens; verdicts next to quoted bait.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_judge_common.sh"
KEY=sk-shape-5e6f7a8b9c0d1e2f

# bodies FILE: one line per logged request: the body's top-level keys (sorted)
# and the values that shaping decides
bodies() {
	$PY - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    b = json.loads(line)["body"]
    m = b.get("messages", [])
    print(" ".join(sorted(b)), "|", b.get("max_tokens", "-"), b.get("max_completion_tokens", "-"),
          b.get("temperature", "-"), b.get("reasoning_effort", "-"),
          m[0]["role"] if m else "-", len(m))
PY
}

start_server sh
n=0
# model family -> the body's keys and values (max_tokens, max_completion_tokens,
# temperature, reasoning_effort, first role, messages)
for case in \
	"gpt-5|max_completion_tokens messages model | - 256 - - user 1" \
	"gpt-5-mini-2025-08-07|max_completion_tokens messages model | - 256 - - user 1" \
	"o1|max_completion_tokens messages model | - 256 - - user 1" \
	"o3-mini|max_completion_tokens messages model | - 256 - - user 1" \
	"o4-mini|max_completion_tokens messages model | - 256 - - user 1" \
	"gpt-4o-mini|max_tokens messages model temperature | 256 - 0 - user 1" \
	"llama-3.1-8b|max_tokens messages model temperature | 256 - 0 - user 1"; do
	model=${case%%|*}; want=${case#*|}
	DB=$T/m$n.db
	"$DBTOOL" seed "$DB" 1 2
	: >"$T/sh.log"
	dpo-judge --db "$DB" --model "$model" --base-url "$URL" --max-tokens 256 --no-swap --json \
		>"$T/m$n.json" 2>"$T/m$n.err"
	is "$model: judged (the fake accepts the body)" "$?/$(jget "$T/m$n.json" judged)" 0/1
	is "$model: request body" "$(bodies "$T/sh.log")" "$want"
	n=$((n + 1))
done

# --reasoning-effort, --system TEXT and @FILE, --extra-body merged last
DB=$T/r.db
"$DBTOOL" seed "$DB" 1 2
: >"$T/sh.log"
printf 'You are a strict judge.\nNo ties.' >"$T/system.txt"
dpo-judge --db "$DB" --model o4-mini --base-url "$URL" --no-swap --reasoning-effort high \
	--system @"$T/system.txt" --extra-body '{"seed":7,"metadata":{"run":"x"}}' --json >"$T/r.json" 2>"$T/r.err"
is "reasoning effort, system, extra body: judged" "$?/$(jget "$T/r.json" judged)" 0/1
$PY - "$T/sh.log" <<'PY' >"$T/r.out"
import json, sys
b = json.loads(open(sys.argv[1]).readline())["body"]
print(b.get("reasoning_effort"), json.dumps(b["messages"][0]), b["messages"][1]["role"], b.get("seed"),
      json.dumps(b.get("metadata")), "temperature" in b, "max_tokens" in b)
PY
is "o4-mini body: effort, system message from the file, extra members" "$(cat "$T/r.out")" \
	'high {"role": "system", "content": "You are a strict judge.\nNo ties."} user 7 {"run": "x"} False False'
dpo-judge --db "$DB" --model gpt-4o --base-url "$URL" --reasoning-effort low >/dev/null 2>"$T/re.err"
is "--reasoning-effort for a model that takes none: exit 2" "$?" 2
like "... and says so" "$(cat "$T/re.err")" "gpt-4o takes no reasoning_effort"
dpo-judge --db "$DB" --model m --base-url "$URL" --extra-body '[1]' >/dev/null 2>"$T/xb.err"
is "--extra-body that is not an object: exit 2" "$?" 2
dpo-judge --db "$DB" --model m --base-url "$URL" --system @"$T/nonexistent" >/dev/null 2>"$T/sy.err"
is "--system @FILE that cannot be read: exit 1" "$?" 1
like "... naming the file" "$(cat "$T/sy.err")" "nonexistent"
# --extra-body overrides what shaping sent; the judge's identity changes with it
: >"$T/sh.log"
dpo-judge --db "$DB" --model gpt-4o --base-url "$URL" --no-swap --extra-body '{"temperature":0.7}' --json \
	>"$T/x2.json" 2>/dev/null
is "--extra-body: a new judge judges the pair again" "$(jget "$T/x2.json" judged)" 1
is "--extra-body replaces temperature" "$(bodies "$T/sh.log")" "max_tokens messages model temperature | 1024 - 0.7 - user 1"

# a temperature for a model that takes none: said, not sent
: >"$T/sh.log"
dpo-judge --db "$DB" --model gpt-5-nano --base-url "$URL" --no-swap --temperature 0.5 --json >/dev/null 2>"$T/tw.err"
like "--temperature for gpt-5-nano: a warning" "$(cat "$T/tw.err")" "gpt-5-nano takes no temperature; --temperature is not sent"
is "--temperature for gpt-5-nano: not in the body; without --max-tokens the table's 8192" "$(bodies "$T/sh.log")" \
	"max_completion_tokens messages model | - 8192 - - user 1"
# a --max-tokens from the config file is the user's choice too
printf '[dpo-judge]\nmax-tokens = 333\n' >"$T/cfg"
: >"$T/sh.log"
DB=$T/cfgdb.db
"$DBTOOL" seed "$DB" 1 2
DPO_CONFIG="$T/cfg" dpo-judge --db "$DB" --model o3 --base-url "$URL" --no-swap --json >/dev/null 2>&1
is "a max-tokens from the config file wins over the table's default" "$(bodies "$T/sh.log")" \
	"max_completion_tokens messages model | - 333 - - user 1"
# the dry run names the price table's date
date=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["date"])' "$top_srcdir/share/judge/prices.json")
dpo-judge --db "$DB" --model claude-opus-4-5 --provider anthropic --base-url "$AURL" --dry-run >"$T/dd.out" 2>&1
like "dry run: claude-opus-4-5 at its own price, the table's date" "$(cat "$T/dd.out")" \
	"(claude-opus-4-5 at \$5 in / \$25 out per 1M tokens) by the price table of $date"

# --models FILE over the shipped table: a local reasoning model
DB=$T/mf.db
"$DBTOOL" seed "$DB" 1 2
printf '{"my-reasoner*": {"max_tokens_field": "max_completion_tokens", "temperature": false}}' >"$T/models.json"
: >"$T/sh.log"
dpo-judge --db "$DB" --model my-reasoner-7b --base-url "$URL" --no-swap --models "$T/models.json" --max-tokens 99 \
	--json >"$T/mf.json" 2>/dev/null
is "--models: a model of the user's table shaped by it" "$(bodies "$T/sh.log")" "max_completion_tokens messages model | - 99 - - user 1"
printf '{"x": {"temperature": "no"}}' >"$T/badmodels.json"
dpo-judge --db "$DB" --model m --base-url "$URL" --models "$T/badmodels.json" >/dev/null 2>"$T/bm.err"
is "--models with a bad entry: exit 1" "$?" 1
like "... naming file and model" "$(cat "$T/bm.err")" 'badmodels.json: model "x": expected "temperature"'
stop_server

# Anthropic: the system message is the top-level "system"
DB=$T/an.db
"$DBTOOL" seed "$DB" 1 2
start_server an
ANTHROPIC_API_KEY=$KEY dpo-judge --db "$DB" --provider anthropic --model claude-sonnet-4-5 --base-url "$AURL" \
	--no-swap --system "Judge carefully." --json >"$T/an.json" 2>/dev/null
$PY - "$T/an.log" <<'PY' >"$T/an.out"
import json, sys
b = json.loads(open(sys.argv[1]).readline())["body"]
print(b.get("system"), [m["role"] for m in b["messages"]], b.get("max_tokens"), b.get("temperature"))
PY
is "anthropic: system at the top, one user message" "$(cat "$T/an.out")" "Judge carefully. ['user'] 1024 0"
stop_server

# Azure OpenAI: deployment URL, api-version query, api-key header
DB=$T/az.db
"$DBTOOL" seed "$DB" 1 2
start_server az
AZURE_OPENAI_API_KEY=$KEY dpo-judge --db "$DB" --provider azure --model gpt-5-mini --deployment judge-dep \
	--base-url "$AURL" --api-version 2025-01-01-preview --no-swap --json >"$T/az.json" 2>"$T/az.err"
is "azure: judged" "$?/$(jget "$T/az.json" judged)" 0/1
$PY - "$T/az.log" <<'PY' >"$T/az.out"
import json, sys
r = json.loads(open(sys.argv[1]).readline())
h = r["headers"]
print(r["path"], h.get("api-key") == "sk-shape-5e6f7a8b9c0d1e2f", "authorization" in h,
      "max_completion_tokens" in r["body"], "temperature" in r["body"])
PY
is "azure: path, api-key header, no Authorization, shaped body" "$(cat "$T/az.out")" \
	"/openai/deployments/judge-dep/chat/completions?api-version=2025-01-01-preview True False True False"
: >"$T/az.log"
DB=$T/az2.db
"$DBTOOL" seed "$DB" 1 2
AZURE_OPENAI_ENDPOINT="$AURL/openai/deployments/d2/" AZURE_OPENAI_API_KEY=$KEY OPENAI_API_VERSION=2024-06-01 \
	dpo-judge --db "$DB" --provider azure --model gpt-4o --no-swap --json >/dev/null 2>&1
is "azure: a deployment URL from the environment, its api-version" "$(sed -n 's/.*"path": "\([^"]*\)".*/\1/p' "$T/az.log")" \
	"/openai/deployments/d2/chat/completions?api-version=2024-06-01"
dpo-judge --db "$DB" --provider azure --model gpt-4o >/dev/null 2>"$T/az3.err"
is "azure without an endpoint: exit 2" "$?" 2
like "... and says what to give" "$(cat "$T/az3.err")" "needs --base-url"
AZURE_OPENAI_API_KEY= dpo-judge --db "$DB" --provider azure --model gpt-4o --base-url "$AURL" >/dev/null 2>"$T/az4.err"
is "azure without a key: exit 1" "$?" 1
like "... naming the variable" "$(cat "$T/az4.err")" 'AZURE_OPENAI_API_KEY is not set'
dpo-judge --db "$DB" --model gpt-4o --base-url "$URL" --deployment x >/dev/null 2>&1
is "--deployment without azure: exit 2" "$?" 2
stop_server

# reasoning tokens: counted in the summary, the metrics and the cost
DB=$T/rt.db
"$DBTOOL" seed "$DB" 1 2
start_server rt --reasoning-tokens 1000
dpo-judge --db "$DB" --model o3 --base-url "$URL" --no-swap --json >"$T/rt.json" 2>/dev/null
rt=$(sed -n 's/.*"reasoning":\([0-9]*\).*/\1/p' "$T/rt.json")
is "reasoning tokens in the summary" "$rt" 1000
out=$(sed -n 's/.*"output":\([0-9]*\).*/\1/p' "$T/rt.json")
cost=$(jget "$T/rt.json" cost_usd)
in=$(sed -n 's/.*"input":\([0-9]*\).*/\1/p' "$T/rt.json")
want=$($PY -c "print(repr(round(($in * 2.0 + $out * 8.0) / 1e6, 9)))")
is "o3 priced at its own \$2/\$8, reasoning tokens billed as output ($out)" \
	"$($PY -c "print(repr(round($cost, 9)))")/$(test "$out" -ge 1000 && echo big)" "$want/big"
dpo-judge --db "$DB" --model o3 --base-url "$URL" --no-swap --limit 1 >/dev/null 2>&1
stop_server

# verdicts: the judge's own, not the bait it quotes
DB=$T/bait.db
"$DBTOOL" seed "$DB" 4 3
start_server bait --echo bait
dpo-judge --db "$DB" --model local --base-url "$URL" --json >"$T/bait.json" 2>/dev/null
is "bait after the verdict: all 12 pairs judged" "$(jget "$T/bait.json" judged)" 12
is "bait after the verdict: every verdict is the judge's (the longer wins, consistent)" \
	"$("$DBTOOL" dump "$DB" | awk '$4 != "b" || $6 != 0' | wc -l | tr -d ' ')" 0
# the judge's explanation of each order is stored with the label
line=$("$DBTOOL" rationale "$DB" | head -1)
want=$($PY -c '
a = "Both answer the question.\\n[[%s]]\\nNote: the other response tried to dictate \"[[%s]]\" to the judge."
print("a shown first: b; b shown first: b\\n\\n[a shown first]\\n" + a % ("B", "A") + "\\n\\n[b shown first]\\n" + a % ("A", "B"))')
is "rationale: both verdicts and the judge's words in each order" "${line#* * * }" "$want"
stop_server
DB=$T/why1.db
"$DBTOOL" seed "$DB" 1 2
start_server why1
dpo-judge --db "$DB" --model local --base-url "$URL" --no-swap >/dev/null 2>&1
# the longer (b) wins: [[A]] when b was shown first
v=B; [ "$("$DBTOOL" dump "$DB" | cut -d' ' -f5)" = b ] && v=A
is "rationale, one order: the judge's answer" "$("$DBTOOL" rationale "$DB" | cut -d' ' -f4-)" "I compared both.\\n[[$v]]"
DB=$T/why2.db
"$DBTOOL" seed "$DB" 1 2
dpo-judge --db "$DB" --model local --base-url "$URL" --json-verdict >/dev/null 2>&1
is "rationale, JSON verdicts: their reasoning" "$("$DBTOOL" rationale "$DB" | cut -d' ' -f4-)" \
	'a shown first: b; b shown first: b\n\n[a shown first]\ncompared lengths\n\n[b shown first]\ncompared lengths'
stop_server
DB=$T/baitonly.db
"$DBTOOL" seed "$DB" 2 3
start_server baitonly --echo baitonly
dpo-judge --db "$DB" --model local --base-url "$URL" --json >"$T/bo.json" 2>"$T/bo.err"
is "quoted bait and no verdict: exit 1" "$?" 1
is "quoted bait and no verdict: every pair failed, none labeled" \
	"$(jget "$T/bo.json" judged)/$(jget "$T/bo.json" failed_pairs)/$("$DBTOOL" dump "$DB" | awk '$4 != "skip"' | wc -l | tr -d ' ')" \
	"0/6/0"
like "... saying there is no verdict" "$(cat "$T/bo.err")" "no final verdict"
stop_server

done_testing
