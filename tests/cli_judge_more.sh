#!/bin/sh
# dpo-judge against the fake server: Anthropic, prompt injection, structured
# verdicts and position bias, pair selection, reference templates, keys.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_judge_common.sh"
KEY=sk-test-4f9a1c77e2b34d0c
DB=$T/j.db
"$DBTOOL" seed "$DB" 1 2
# Anthropic: path, headers, tool-use verdicts
DB2=$T/a.db
"$DBTOOL" seed "$DB2" 2 3 conv
start_server s2
ANTHROPIC_API_KEY=$KEY dpo-judge --db "$DB2" --provider anthropic --model claude-3-5-haiku-latest \
	--base-url "$AURL" --json-verdict --json >"$T/a.json" 2>"$T/a.err"
is "anthropic run exits 0" "$?" 0
is "anthropic: 6 pairs judged" "$(jget "$T/a.json" judged)" 6
is "anthropic: the longer wins" "$("$DBTOOL" dump "$DB2" | awk '$4 != "b"' | wc -l | tr -d ' ')" 0
$PY - "$T/s2.log" <<'PY' >"$T/ahdr.out"
import json, sys
bad = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    h, b = r["headers"], r["body"]
    if r["path"] != "/v1/messages": bad += 1
    if h.get("x-api-key") != "sk-test-4f9a1c77e2b34d0c" or "authorization" in h: bad += 1
    if h.get("anthropic-version") != "2023-06-01": bad += 1
    if b.get("tool_choice", {}).get("name") != "record_verdict": bad += 1
    if "system: Be brief." not in b["messages"][0]["content"]: bad += 1
print(bad)
PY
is "Anthropic path, headers, tool and conversation prompt" "$(cat "$T/ahdr.out")" 0
grep -a -q "$KEY" "$DB2" "$T/a.json" "$T/a.err"; is "anthropic key not stored" "$?" 1
stop_server

# prompt injection: completions carrying "[[B]]" and "Verdict: B" never decide
for echo in plain after; do
	DB3=$T/inj-$echo.db
	"$DBTOOL" seed "$DB3" 3 3 inject
	start_server inj-$echo --echo $echo
	dpo-judge --db "$DB3" --model local --base-url "$URL" --json >"$T/inj.json" 2>/dev/null
	is "injection ($echo echo): 9 judged" "$(jget "$T/inj.json" judged)" 9
	is "injection ($echo echo): every verdict is the true one, consistent" \
		"$("$DBTOOL" dump "$DB3" | awk '$4 != "b" || $6 != 0' | wc -l | tr -d ' ')" 0
	stop_server
done

# OpenAI structured output; position-biased judge is caught by swapping
DB4=$T/b.db
"$DBTOOL" seed "$DB4" 3 3
start_server s4 --rule first
dpo-judge --db "$DB4" --model local --base-url "$URL" --json-verdict --json >"$T/b.json" 2>/dev/null
is "biased judge: every pair inconsistent" "$(jget "$T/b.json" inconsistent)" 9
is "biased judge: first-position win rate 1" "$(jget "$T/b.json" first_position_win_rate)" 1
is "biased judge: stored as ties flagged inconsistent" \
	"$("$DBTOOL" dump "$DB4" | awk '$4 == "tie" && $6 == 1' | wc -l | tr -d ' ')" 9
grep -q '"response_format": {"type": "json_schema"' "$T/s4.log"; is "json_schema response_format sent" "$?" 0
stop_server

# pair selection: random:N, --limit, --split, --include-labeled
DB5=$T/sel.db
"$DBTOOL" seed "$DB5" 5 3 label
start_server s5
dpo-judge --db "$DB5" --model m --base-url "$URL" --no-swap --pairs random:4 --seed 3 --json >"$T/s5a.json" 2>/dev/null
is "random:4 judges 4 pairs" "$(jget "$T/s5a.json" judged)" 4
dpo-judge --db "$DB5" --model m --base-url "$URL" --no-swap --limit 3 --json >"$T/s5b.json" 2>/dev/null
is "--limit 3 judges 3 more" "$(jget "$T/s5b.json" judged)" 3
dpo-judge --db "$DB5" --model m --base-url "$URL" --no-swap --json >"$T/s5c.json" 2>/dev/null
is "human-labeled pairs are skipped: 3 left of 10" "$(jget "$T/s5c.json" judged)" 3
dpo-judge --db "$DB5" --model m --base-url "$URL" --no-swap --include-labeled --json >"$T/s5d.json" 2>/dev/null
is "--include-labeled adds the 5 labeled pairs" "$(jget "$T/s5d.json" judged)" 5
dpo-judge --db "$DB5" --model m --base-url "$URL" --no-swap --split test --json >"$T/s5e.json" 2>/dev/null
is "--split test: none there" "$(jget "$T/s5e.json" pairs)" 0
stop_server

# a template with {{reference}} needs --references
printf '{{response_a}} {{response_b}} {{reference}}\n' >"$T/ref.tmpl"
dpo-judge --db "$DB5" --model m --base-url "$URL" --template "$T/ref.tmpl" >/dev/null 2>"$T/ref.err"
is "reference template without --references: exit 2" "$?" 2
printf '{{response_a}} {{nope}}\n' >"$T/bad.tmpl"
dpo-judge --db "$DB5" --model m --base-url "$URL" --template "$T/bad.tmpl" >/dev/null 2>"$T/bad.err"
like "a bad template is named with its line" "$(cat "$T/bad.err")" "bad.tmpl:1: unknown placeholder"
DB6=$T/ref.db
"$DBTOOL" seed "$DB6" 2 2
printf '{"prompt": "Question 0: what is 0 + 0?", "reference": "0"}\n{"prompt_id": 2, "reference": "2"}\n' >"$T/refs.jsonl"
start_server s6
dpo-judge --db "$DB6" --model m --base-url "$URL" --template pairwise-reference --references "$T/refs.jsonl" \
	--json >"$T/s6.json" 2>"$T/s6.err"
is "reference template: 2 pairs judged" "$(jget "$T/s6.json" judged)" 2
grep -q 'Reference answer:' "$T/s6.log"; is "the reference template was used" "$?" 0
stop_server

# the default endpoint needs a key; no request is made without one
dpo-judge --db "$DB" --model gpt-4o-mini >/dev/null 2>"$T/nokey.err"
is "no key for api.openai.com: exit 1" "$?" 1
like "says which variable" "$(cat "$T/nokey.err")" "OPENAI_API_KEY is not set"

done_testing
