#!/bin/sh
# dpo-judge --mode rating and --mode rank (#15) against the fake server: the
# request bodies (system part from the template or --system, the answers
# shown), scores and rankings found by the verdict rule (quoted bait, answers
# without one are failed parses), the ratings and implied comparisons stored
# exactly (checked against a reference computed here), ties, derive-pairs
# from the judge's ratings, the cache and claims.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_judge_common.sh"
KEY=sk-modes-0a1b2c3d4e5f
export OPENAI_API_KEY=$KEY
DATA=$top_srcdir/tests/data/judge/modes.jsonl

fresh() {
	rm -f "$1"
	dpo-db import --db "$1" "$DATA" >/dev/null 2>&1 || { echo "Bail out! import failed"; exit 1; }
}

# py SCRIPT ARGS...: run python on the database(s)
py() {
	_s=$1; shift
	$PY -c "$_s" "$@"
}

# the ratings a judge stored: "prompt-text|completion-text|aspect|value|min|max" sorted
RATINGS='import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT p.content, c.text, r.aspect, r.value, r.scale_min, r.scale_max FROM ratings r "
                  "JOIN completions c ON c.id = r.completion_id JOIN prompts p ON p.id = c.prompt_id "
                  "JOIN annotators a ON a.id = r.annotator_id WHERE a.kind = \"judge\"").fetchall()
for r in sorted(rows):
    print("|".join(str(x) for x in (r[0], r[1], r[2], int(r[3]), int(r[4]), int(r[5]))))'
# the reference: 1 + len % 10 (or per aspect i: 1 + (len + i) % 5); NOSCORE: none
RATINGS_REF='import json, sys
asp = [a for a in sys.argv[2].split(",") if a]
out = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    for t in r["completions"]:
        if "NOSCORE" in t:
            continue
        if asp:
            out += ["%s|%s|%s|%d|1|5" % (r["prompt"], t, a, 1 + (len(t) + i) % 5) for i, a in enumerate(asp)]
        else:
            out.append("%s|%s|overall|%d|1|10" % (r["prompt"], t, 1 + len(t) % 10))
print("\n".join(sorted(out)))'

# usage errors
dpo-judge --model m --mode grade >/dev/null 2>&1; is "unknown --mode: exit 2" "$?" 2
dpo-judge --model m --aspects honesty >/dev/null 2>&1; is "--aspects without --mode rating: exit 2" "$?" 2
dpo-judge --model m --mode rating --aspects 'a,,b' >/dev/null 2>&1; is "an empty aspect: exit 2" "$?" 2
dpo-judge --model m --mode rating --aspects 'x,X' >/dev/null 2>&1; is "an aspect twice: exit 2" "$?" 2
dpo-judge --model m --mode rank --batch --db "$T/none.db" 2>"$T/usage.err" >/dev/null; is "--batch with --mode rank: exit 2" "$?" 2
like "and says batch is pairwise only" "$(cat "$T/usage.err")" "pairwise judging only"
dpo-judge --model m --mode rank --json-verdict >/dev/null 2>&1; is "--mode rank --json-verdict: exit 2" "$?" 2
DB=$T/u.db
fresh "$DB"
dpo-judge --db "$DB" --model m --base-url http://127.0.0.1:9/v1 --mode rating --template pairwise \
	>/dev/null 2>"$T/u.err"
is "a pairwise template for --mode rating: exit 2" "$?" 2
like "... says the template's mode" "$(cat "$T/u.err")" "is for --mode pairwise, not rating"

start_server m
# ---- rating: one request per completion, 1..10 --------------------------------
DB=$T/r.db
fresh "$DB"
dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --mode rating --json >"$T/r.json" 2>"$T/r.err"
is "rating: exit 1 (a completion got no score)" "$?" 1
is "rating: 11 requests, one per completion" "$(nreq m)/$(jget "$T/r.json" requests)" 11/11
is "rating: 10 scored, 1 failed, 10 ratings" \
	"$(jget "$T/r.json" judged)/$(jget "$T/r.json" failed)/$(jget "$T/r.json" ratings)" 10/1/10
like "rating: the failed parse is named" "$(cat "$T/r.err")" "has no score"
is "rating: the stored ratings, exactly" "$(py "$RATINGS" "$DB")" "$(py "$RATINGS_REF" "$DATA" "")"
# the bodies: the template's system part, one answer between markers, the 1-10 format
py 'import json, sys, re
for line in open(sys.argv[1]):
    b = json.loads(line)["body"]
    m = b["messages"]
    u = m[-1]["content"]
    print(m[0]["role"], m[0]["content"].startswith("You grade answers"), len(m),
          len(re.findall(r"<<<BEGIN [0-9a-f]+>>>", u)), "from 1 (useless) to 10" in u, "{{" in u)
' "$T/m.log" | sort | uniq -c | sed 's/^ *//' >"$T/r.bodies"
is "rating: bodies (system from the template, prompt + 1 answer)" "$(cat "$T/r.bodies")" "11 system True 2 2 True False"
is "rating: the run's metrics" "$(py 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(dict(db.execute("SELECT name, value FROM metrics WHERE name IN (\"judged\", \"failed\", \"labels\", \"requests_sent\") ORDER BY name")))' "$DB")" \
	"{'failed': 1.0, 'judged': 10.0, 'labels': 10.0, 'requests_sent': 11.0}"
# rerun: only the failed one is asked again
: >"$T/m.log"
dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --mode rating --json >"$T/r2.json" 2>/dev/null
is "rating rerun: only the completion without a score is asked" "$(nreq m)/$(jget "$T/r2.json" requests)" 1/1
# derive-pairs turns the judge's ratings into pairs by its rule
dpo-db derive-pairs --db "$DB" --from-ratings overall --all >/dev/null 2>&1
is "derive-pairs --from-ratings overall: exit 0" "$?" 0
DERIVED='import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT ca.text, cb.text, x.verdict FROM comparisons x JOIN completions ca ON ca.id = x.completion_a "
                  "JOIN completions cb ON cb.id = x.completion_b JOIN annotators a ON a.id = x.annotator_id "
                  "WHERE a.name = \"ratings:overall\"").fetchall()
print("\n".join(sorted("%s>%s" % ((a, b) if v == "a" else (b, a)) for a, b, v in rows)))'
DERIVED_REF='import json, sys, itertools
out = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    s = {t: 1 + len(t) % 10 for t in r["completions"] if "NOSCORE" not in t}
    for a, b in itertools.combinations(s, 2):
        if s[a] != s[b]:
            out.append("%s>%s" % ((a, b) if s[a] > s[b] else (b, a)))
print("\n".join(sorted(out)))'
is "derive-pairs: the pairs of the judge's ratings" "$(py "$DERIVED" "$DB")" "$(py "$DERIVED_REF" "$DATA")"

# ---- rating per aspect, 1..5; --system overrides the template's ---------------
DB=$T/a.db
fresh "$DB"
: >"$T/m.log"
dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --mode rating --aspects helpfulness,honesty \
	--system 'Be terse.' --json >"$T/a.json" 2>/dev/null
is "aspects: exit 1, 10 scored, 20 ratings" "$?/$(jget "$T/a.json" judged)/$(jget "$T/a.json" ratings)" 1/10/20
is "aspects: the stored ratings, exactly" "$(py "$RATINGS" "$DB")" "$(py "$RATINGS_REF" "$DATA" helpfulness,honesty)"
is "aspects: --system replaces the template's system part" \
	"$(py 'import json,sys; b=json.loads(open(sys.argv[1]).readline())["body"]; print(b["messages"][0]["content"])' "$T/m.log")" \
	"Be terse."
stop_server

# ---- bait: the quoted token after the real one is not the score ---------------
start_server b --echo bait
DB=$T/b.db
fresh "$DB"
dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --mode rating --json >/dev/null 2>&1
is "rating with quoted bait: the judge's own scores" "$(py "$RATINGS" "$DB")" "$(py "$RATINGS_REF" "$DATA" "")"
stop_server
start_server bo --echo baitonly
DB=$T/bo.db
fresh "$DB"
dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --mode rating --json >"$T/bo.json" 2>/dev/null
is "rating, bait alone: every request a failed parse, no rating" \
	"$?/$(jget "$T/bo.json" failed)/$(py "$RATINGS" "$DB" | wc -l | tr -d ' ')" 1/11/0
dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --mode rank --json >"$T/bk.json" 2>/dev/null
is "rank, bait alone: every request a failed parse, no comparison" \
	"$?/$(jget "$T/bk.json" failed)/$("$DBTOOL" count "$DB")" 1/4/0
stop_server

# ---- rank: one request per prompt, the implied pairs --------------------------
COMPS='import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT ca.text, cb.text, x.verdict FROM comparisons x JOIN completions ca ON ca.id = x.completion_a "
                  "JOIN completions cb ON cb.id = x.completion_b JOIN annotators a ON a.id = x.annotator_id "
                  "WHERE a.kind = \"judge\"").fetchall()
def fmt(a, b, v):
    return "%s=%s" % tuple(sorted((a, b))) if v == "tie" else "%s>%s" % ((a, b) if v == "a" else (b, a))
print("\n".join(sorted(fmt(*r) for r in rows)))'
COMPS_REF='import json, sys, itertools
out = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    c = r["completions"]
    if any("NORANK" in t for t in c):
        continue
    for a, b in itertools.combinations(c, 2):
        out.append("%s=%s" % tuple(sorted((a, b))) if len(a) == len(b) else
                   "%s>%s" % ((a, b) if len(a) > len(b) else (b, a)))
print("\n".join(sorted(out)))'
for echo in none bait; do
	start_server k$echo --echo $echo
	DB=$T/k$echo.db
	fresh "$DB"
	dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --mode rank --seed 3 --json \
		>"$T/k$echo.json" 2>"$T/k$echo.err"
	is "rank ($echo): exit 1 (one prompt got no ranking)" "$?" 1
	is "rank ($echo): 4 requests for 4 prompts, 3 ranked, 9 comparisons" \
		"$(nreq k$echo)/$(jget "$T/k$echo.json" judged)/$(jget "$T/k$echo.json" failed)/$(jget "$T/k$echo.json" comparisons)" \
		4/3/1/9
	is "rank ($echo): the implied comparisons (ties included), exactly" "$(py "$COMPS" "$DB")" "$(py "$COMPS_REF" "$DATA")"
	stop_server
done
like "rank: the failed parse is named" "$(cat "$T/knone.err")" "has no ranking"
# the order shown is shuffled per prompt by --seed and recorded in the rationale:
# letter X of the rationale is the completion the request showed as Response X
py 'import json, re, sqlite3, sys
db = sqlite3.connect(sys.argv[2])
text = dict(db.execute("SELECT id, text FROM completions"))
shown = {}
for line in open(sys.argv[1]):
    u = json.loads(line)["body"]["messages"][-1]["content"]
    blocks = re.findall(r"<<<BEGIN [0-9a-f]+>>>\n(.*?)\n<<<END", u, re.S)
    shown[blocks[0]] = blocks[1:]
ok = 0
for (r,) in db.execute("SELECT DISTINCT x.rationale FROM comparisons x"):
    m = re.match(r"rank: ([A-Z =>]+) \((.*?)\)", r)
    pairs = re.findall(r"([A-Z]): completion (\d+)", m.group(2))
    order = [text[int(i)] for _, i in pairs]
    pid = db.execute("SELECT p.content FROM prompts p JOIN completions c ON c.prompt_id = p.id WHERE c.id = ?",
                     (int(pairs[0][1]),)).fetchone()[0]
    ok += shown[pid] == order and "judge: Compared" in r
print(ok)' "$T/knone.log" "$T/knone.db" >"$T/order.out"
is "rank: the rationale records the letters as shown, and the explanation" "$(cat "$T/order.out")" 3
# another seed shows another order for at least one prompt
start_server ks
DB=$T/ks.db
fresh "$DB"
dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --mode rank --seed 11 --json >/dev/null 2>&1
BODIES='import json, sys, re
for line in open(sys.argv[1]):
    u = json.loads(line)["body"]["messages"][-1]["content"]
    print("|".join(re.findall(r"<<<BEGIN [0-9a-f]+>>>\n(.*?)\n<<<END", u, re.S)))'
o3=$(py "$BODIES" "$T/knone.log" | sort)
o11=$(py "$BODIES" "$T/ks.log" | sort)
ok "rank: --seed changes the order shown" test "$o3" != "$o11"
is "rank: the same comparisons whatever the order" "$(py "$COMPS" "$DB")" "$(py "$COMPS_REF" "$DATA")"

# cache: with the labels gone, a rerun is answered from the cache (the mode is
# part of the key: a rating run on the same store asks the server)
py 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); db.execute("DELETE FROM comparisons"); db.commit()' "$DB"
: >"$T/ks.log"
dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --mode rank --seed 11 --json >"$T/kc.json" 2>/dev/null
is "rank rerun: 3 from the cache, the failed prompt asked again" \
	"$(jget "$T/kc.json" cached)/$(nreq ks)/$("$DBTOOL" count "$DB")" 3/1/9
stop_server

# ---- the modes' requests per provider and model family ------------------------
start_server f
DB=$T/fa.db
fresh "$DB"
ANTHROPIC_API_KEY=$KEY dpo-judge --db "$DB" --provider anthropic --model claude-sonnet-4-5 --base-url "$AURL" \
	--mode rank --json >"$T/fa.json" 2>/dev/null
is "anthropic rank: 3 ranked, the implied comparisons" "$(jget "$T/fa.json" judged)|$(py "$COMPS" "$DB")" \
	"3|$(py "$COMPS_REF" "$DATA")"
BODY='import json, sys
l = json.loads(open(sys.argv[1]).readlines()[int(sys.argv[2])])
b = l["body"]
print(l["path"], str(b.get("system", "-"))[:11], b["messages"][0]["role"], len(b["messages"]),
      "max_tokens" in b, "max_completion_tokens" in b, "temperature" in b)'
is "anthropic rank: /v1/messages, the template's system part top-level, one user message" \
	"$(py "$BODY" "$T/f.log" 0)" "/v1/messages You compare user 1 True False True"
: >"$T/f.log"
DB=$T/fg.db
fresh "$DB"
dpo-judge --db "$DB" --model gpt-5-mini --base-url "$URL" --mode rating --limit 2 --json >"$T/fg.json" 2>/dev/null
is "gpt-5-mini rating, --limit 2: 2 requests, 2 ratings" "$(nreq f)/$(jget "$T/fg.json" ratings)" 2/2
is "gpt-5-mini rating: system message, max_completion_tokens, no temperature" \
	"$(py "$BODY" "$T/f.log" 0)" "/v1/chat/completions - system 2 False True False"
stop_server

# ---- claims: two runs on one store split the work -----------------------------
start_server c --latency 0.4
DB=$T/c.db
head -n 2 "$DATA" >"$T/two.jsonl"
rm -f "$DB"
dpo-db import --db "$DB" "$T/two.jsonl" >/dev/null 2>&1
dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --mode rating --concurrency 2 --json -q \
	>"$T/c1.json" 2>/dev/null &
p1=$!
dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --mode rating --concurrency 2 --json -q \
	>"$T/c2.json" 2>/dev/null
wait $p1
is "claims: two rating runs ask for each of 6 completions once" "$(nreq c)" 6
is "claims: 6 ratings stored" "$(py "$RATINGS" "$DB" | wc -l | tr -d ' ')" 6
stop_server

# ---- long rationales are stored compressed, read back whole ------------------
start_server z --pad 12000
for mode in rank pairwise; do
	DB=$T/z$mode.db
	"$DBTOOL" seed "$DB" 2 3
	dpo-judge --db "$DB" --model gpt-4o-mini --base-url "$URL" --mode $mode --json >/dev/null 2>&1
	is "$mode, 12 KB explanations: exit 0" "$?" 0
	py 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT typeof(rationale), length(CAST(rationale AS BLOB)), "
                  "substr(CAST(rationale AS TEXT), 1, 14) FROM comparisons").fetchall()
print(len(rows), all(t == "blob" and n < 4096 for t, n, _ in rows), sorted(set(h for _, _, h in rows)))' "$DB" \
		>"$T/z$mode.col"
	"$DBTOOL" rationale "$DB" >"$T/z$mode.rat"
	py 'import sys
lines = open(sys.argv[1]).read().splitlines()
filler = "The two answers differ in accuracy and in detail; I weigh each claim in turn. "
print(len(lines), all(l.count(filler) >= 140 and "[[" in l[-30:] for l in lines))' "$T/z$mode.rat" >"$T/z$mode.whole"
done
is "rank: 6 comparisons stored as compressed BLOBs under 4 KB, first line readable" "$(cat "$T/zrank.col")" \
	"6 True ['rank: C > A > ', 'rank: C > B > ']"
is "rank: each rationale reads back whole (the explanation and its ranking)" "$(cat "$T/zrank.whole")" "6 True"
is "pairwise: 6 comparisons stored compressed, first line readable" "$(cat "$T/zpairwise.col")" \
	"6 True ['a shown first:']"
is "pairwise: each rationale reads back whole" "$(cat "$T/zpairwise.whole")" "6 True"
# the report quotes the judges' explanations (decompressed, cut, escaped)
dpo-db --db "$T/zpairwise.db" report "$T/z.html" >/dev/null 2>&1
is "report of the judged store: exit 0" "$?" 0
py 'import sys, re, xml.dom.minidom
xml.dom.minidom.parse(sys.argv[1])
h = open(sys.argv[1], encoding="utf-8").read()
sec = h.split("<h2>Judges\x27 explanations</h2>")[1].split("<h2>")[0] if "<h2>Judges\x27 explanations</h2>" in h else ""
filler = "The two answers differ in accuracy and in detail; I weigh each claim in turn. "
d = re.findall(r"<details>", sec)
cut = re.findall(r"\[\u2026 (\d+) more bytes\]", sec)
print(len(d), sec.count(filler) >= 6 * 20, len(cut), all(int(c) > 9000 for c in cut))' "$T/z.html" >"$T/z.rep"
is "report: 6 explanations quoted from the compressed rationales, each cut with the rest counted" \
	"$(cat "$T/z.rep")" "6 True 6 True"
# the position statistics read the first line of compressed rationales: the
# same figures as for the same verdicts with short rationales
stop_server
start_server zs
"$DBTOOL" seed "$T/zshort.db" 2 3
dpo-judge --db "$T/zshort.db" --model gpt-4o-mini --base-url "$URL" --json >/dev/null 2>&1
BIAS='import json, sys
print(json.dumps(json.load(sys.stdin)["position_bias"], sort_keys=True))'
dpo-db stats --db "$T/zpairwise.db" --json 2>/dev/null | $PY -c "$BIAS" >"$T/zbias.long"
dpo-db stats --db "$T/zshort.db" --json 2>/dev/null | $PY -c "$BIAS" >"$T/zbias.short"
like "pairwise: dpo-db stats counts the compressed rationales' orders" "$(cat "$T/zbias.long")" '"n": 12'
is "pairwise: ... the same position bias as with short rationales" "$(cat "$T/zbias.long")" "$(cat "$T/zbias.short")"
stop_server

# a server that is down: stops at once with the URL named, nothing stored
DB=$T/d.db
fresh "$DB"
dpo-judge --db "$DB" --model gpt-4o-mini --base-url http://127.0.0.1:9/v1 --mode rank >/dev/null 2>"$T/d.err"
is "down server: exit 1" "$?" 1
like "down server: the URL is named" "$(cat "$T/d.err")" "cannot reach http://127.0.0.1:9/v1"
done_testing
