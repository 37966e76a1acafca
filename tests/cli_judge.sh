#!/bin/sh
# dpo-judge against the fake server: usage, dry run, the OpenAI API, the
# request cache, the key kept out of the store and the output.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_judge_common.sh"
KEY=sk-test-4f9a1c77e2b34d0c
DB=$T/j.db

ok "--help" dpo-judge --help
like "--help lists --provider" "$(dpo-judge --help)" "--provider"
ok "--version" dpo-judge --version
dpo-judge --provider gemini --model x >/dev/null 2>&1; is "unknown provider: exit 2" "$?" 2
dpo-judge --db "$DB" >/dev/null 2>&1; is "missing --model: exit 2" "$?" 2
dpo-judge --provider exec --db "$DB" >/dev/null 2>&1; is "exec without --command: exit 2" "$?" 2
dpo-judge --model m --pairs some >/dev/null 2>&1; is "bad --pairs: exit 2" "$?" 2

ok "seed 4 prompts x 3 completions" "$DBTOOL" seed "$DB" 4 3
start_server s1

# dry run: counts, sends nothing
OPENAI_API_KEY=$KEY dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --dry-run >"$T/dry.out" 2>&1
is "dry run exits 0" "$?" 0
like "dry run counts 24 requests" "$(cat "$T/dry.out")" "12 pairs, 24 requests to send"
like "dry run estimates cost" "$(cat "$T/dry.out")" "estimated cost: at most \$"
is "dry run sends nothing" "$(nreq s1)" 0
dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --dry-run --json >"$T/dry.json" 2>/dev/null
is "dry run --json requests" "$(jget "$T/dry.json" requests)" 24
is "dry run left no comparisons" "$("$DBTOOL" count "$DB")" 0
# #12: a model name is printed with its control characters escaped
OPENAI_API_KEY=$KEY dpo-judge --db "$DB" --model "$(printf 'evil\033[2J')" --base-url "$URL" --dry-run \
	>"$T/dry-evil.out" 2>&1
is "dry run, a model name with an escape: no ESC byte" "$(grep -c "$(printf '\033')" "$T/dry-evil.out")" 0
like "dry run, a model name with an escape: written as \\x1b" "$(cat "$T/dry-evil.out")" 'no price for evil\x1b[2J'
is "dry run, a model name with an escape: sends nothing" "$(nreq s1)" 0

# a real run
OPENAI_API_KEY=$KEY dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --json \
	>"$T/r1.json" 2>"$T/r1.err"
is "run exits 0" "$?" 0
is "24 requests sent" "$(nreq s1)" 24
is "12 pairs judged" "$(jget "$T/r1.json" judged)" 12
is "all consistent" "$(jget "$T/r1.json" consistent)" 12
is "first-position win rate 0.5" "$(jget "$T/r1.json" first_position_win_rate)" 0.5
ok "--json is one JSON document" $PY -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/r1.json"
is "the longer completion wins every pair" "$("$DBTOOL" dump "$DB" | awk '$4 != "b"' | wc -l | tr -d ' ')" 0
is "one comparison per pair" "$("$DBTOOL" dump "$DB" | awk '{print $1, $2, $3}' | sort -u | wc -l | tr -d ' ')" 12
like "tokens counted" "$(cat "$T/r1.json")" '"tokens":{"input":'
$PY - "$T/s1.log" <<'PY' >"$T/hdr.out"
import json, sys
bad = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    h, b = r["headers"], r["body"]
    if r["path"] != "/v1/chat/completions": bad += 1
    if h.get("authorization") != "Bearer sk-test-4f9a1c77e2b34d0c": bad += 1
    if h.get("content-type") != "application/json": bad += 1
    if b["model"] != "gpt-4o-mini" or b["temperature"] != 0 or b["max_tokens"] != 1024: bad += 1
    if len(b["messages"]) != 1 or b["messages"][0]["role"] != "user": bad += 1
    if "[[A]]" not in b["messages"][0]["content"]: bad += 1
print(bad)
PY
is "OpenAI path, headers and bodies as expected" "$(cat "$T/hdr.out")" 0

# rerun: nothing left to do, nothing sent
OPENAI_API_KEY=$KEY dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --json >"$T/r2.json" 2>/dev/null
is "rerun sends nothing" "$(nreq s1)" 24
is "rerun judges nothing" "$(jget "$T/r2.json" judged)" 0

# a new identity (no swap) reuses the cache for the orders already asked
OPENAI_API_KEY=$KEY dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --no-swap --json \
	>"$T/r3.json" 2>/dev/null
is "no-swap run judges 12 pairs" "$(jget "$T/r3.json" judged)" 12
is "all 12 answers come from the cache" "$(jget "$T/r3.json" cached)" 12
is "so nothing more is sent" "$(nreq s1)" 24
nb=$("$DBTOOL" dump "$DB" | awk '$5 == "b"' | wc -l)
test "$nb" -gt 0; is "no-swap shows b first for some pairs (stored as shown_first)" "$?" 0

# the key is nowhere but in the server's log
for f in "$DB" "$DB-wal" "$DB-shm" "$T/r1.json" "$T/r1.err" "$T/r2.json" "$T/r3.json" "$T/dry.out"; do
	[ -f "$f" ] || continue
	if grep -a -q "$KEY" "$f"; then echo "key found in $f" >>"$T/keyleak"; fi
done
is "the key never reaches the store or any output" "$(cat "$T/keyleak" 2>/dev/null)" ""
stop_server

# --rpm: 20 requests at 300/min (5/s, bursts of 5) cannot be sent in less
# than (20 - 5) / 5 = 3 s. The server's receive times jitter under load (the
# first requests of a burst can be logged late), so allow 10%: >= 2.7 s.
# Without the limit the 20 requests take well under 0.3 s.
DB7=$T/rpm.db
"$DBTOOL" seed "$DB7" 10 2
start_server rpm
dpo-judge --db "$DB7" --model m --base-url "$URL" --rpm 300 --json >"$T/rpm.json" 2>/dev/null
is "--rpm: 10 pairs judged" "$(jget "$T/rpm.json" judged)" 10
span=$($PY -c 'import json,sys; t=[json.loads(l)["t"] for l in open(sys.argv[1])]; print(int((max(t)-min(t))*1000))' "$T/rpm.log")
test "$span" -ge 2700; is "--rpm 300: 20 requests spread over >= 2.7 s ($span ms)" "$?" 0
stop_server

done_testing
