#!/bin/sh
# cli_annotate_gold.sh: gold items (dpo-annotate --gold FILE --gold-rate R):
# added from a TRL file, mixed into the queue at the rate (a seeded
# schedule: any k items hold k*R gold ones, give or take one), labelled like
# any pair, scored per annotator in `dpo-db agreement` and the report, and
# kept out of exports and of the agreement between annotators.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_annotate_lib.sh"
command -v dpo-db >/dev/null 2>&1 || skip_all "dpo-db not built"

# 8 prompts x 2 completions: 8 normal pairs; 4 gold items
: >"$T/c.jsonl"
: >"$T/gold.jsonl"
i=1
while [ $i -le 8 ]; do
	echo "{\"prompt\": \"Question $i?\", \"completions\": [\"first answer $i\", \"second answer $i\"]}" >>"$T/c.jsonl"
	[ $i -le 4 ] && echo "{\"prompt\": \"Gold question $i?\", \"chosen\": \"right $i\", \"rejected\": \"wrong $i\"}" >>"$T/gold.jsonl"
	i=$((i + 1))
done
DB=$T/gold.db
dpo-db --db "$DB" import "$T/c.jsonl" >/dev/null 2>&1
is "8 normal pairs" "$(q "SELECT count(*) FROM completions")" 16

# a bad gold file: the line is named, nothing is added, exit 1
printf '{"prompt": "g?", "chosen": "x", "rejected": "y"}\n{"prompt": "h?", "chosen": 3}\n' >"$T/bad.jsonl"
start bad 100 30 --db "$DB" --annotator x --gold "$T/bad.jsonl"
is "bad gold file: exit 1" "$(wait_exit bad)" 1
like "bad gold file: file and line named" "$(cat "$T/bad.err")" "bad.jsonl:2: "
is "bad gold file: nothing added" "$(q "SELECT count(*) FROM gold") $(q "SELECT count(*) FROM prompts")" "0 8"
dpo-annotate --db "$DB" --annotator x --gold "$T/gold.jsonl" --gold-rate 1 </dev/null >/dev/null 2>&1
is "--gold-rate 1 is a usage error" "$?" 2

# label_all NAME: press 1 until nothing is left
label_all() {
	wait_for "$1" "item " >/dev/null
	presses=0 # (keys sets $n)
	while [ $presses -lt 40 ]; do
		case "$(screen "$1")" in *"Nothing left to label"*) break ;; esac
		before=$(votes "$1")
		keys "$1" 1
		j=0
		while [ $j -lt 100 ] && [ "$(votes "$1")" = "$before" ]; do
			sleep 0.03
			j=$((j + 1))
		done
		presses=$((presses + 1))
	done
	keys "$1" q
	wait_exit "$1" >/dev/null
}
# gold_seq NAME: 1 for each of NAME's labels (in order) on a gold item, else 0
gold_seq() {
	q "SELECT group_concat(g, '') FROM (SELECT EXISTS (SELECT 1 FROM gold WHERE gold.completion_a = c.completion_a
	   AND gold.completion_b = c.completion_b) AS g FROM comparisons c JOIN annotators a ON a.id = c.annotator_id
	   WHERE a.name = '$1' ORDER BY c.id)"
}

start alice 100 30 --db "$DB" --annotator alice --gold "$T/gold.jsonl" --gold-rate 0.5 --seed 3
label_all alice
like "--gold: the items added" "$(cat "$T/alice.err")" "4 gold items added, 0 already there"
is "gold items marked in the store" "$(q "SELECT count(*) FROM gold")" 4
is "the gold labels themselves are not comparisons" "$(q "SELECT count(*) FROM comparisons c JOIN annotators a ON a.id = c.annotator_id WHERE a.name <> 'alice'")" 0
s=$(gold_seq alice)
is "alice labelled 8 normal pairs and 4 gold items" "$(echo "$s" | tr -cd 0 | wc -c) $(echo "$s" | tr -cd 1 | wc -c)" "8 4"
is "rate 0.5: 4 gold items among alice's first 8" "$(echo "$s" | cut -c1-8 | tr -cd 1 | wc -c)" 4

# bob, at rate 0.25 and overlap 2 (the same file again adds nothing)
start bob 100 30 --db "$DB" --annotator bob --overlap 2 --gold "$T/gold.jsonl" --gold-rate 0.25 --seed 5
label_all bob
like "--gold again: nothing new" "$(cat "$T/bob.err")" "0 gold items added, 4 already there"
is "--gold again: still 4 gold items" "$(q "SELECT count(*) FROM gold") $(q "SELECT count(*) FROM prompts")" "4 12"
s=$(gold_seq bob)
is "rate 0.25: 2 gold items among bob's first 8" "$(echo "$s" | cut -c1-8 | tr -cd 1 | wc -c)" 2
ok "rate 0.25: every prefix holds k/4 gold items, give or take one" awk -v s="$s" 'BEGIN {
	g = 0; for (k = 1; k <= length(s); k++) { g += substr(s, k, 1); d = g - k / 4; if (d >= 1 || d <= -1) exit 1 } }'
is "bob labelled every normal pair" "$(echo "$s" | tr -cd 0 | wc -c)" 8

# carol: --gold-rate 0 shows no gold item (the store's are there)
start carol 100 30 --db "$DB" --annotator carol --overlap 3 --gold-rate 0
label_all carol
is "--gold-rate 0: no gold item" "$(gold_seq carol)" "00000000"

# accuracy: what alice and bob got right, computed from the store
right() {
	q "SELECT sum(c.verdict = g.answer) || '/' || count(*) FROM comparisons c JOIN annotators a ON a.id = c.annotator_id
	   JOIN gold g ON g.completion_a = c.completion_a AND g.completion_b = c.completion_b WHERE a.name = '$1'"
}
ra=$(right alice)
rb=$(right bob)
dpo-db --db "$DB" agreement >"$T/agr.txt" 2>&1
is "agreement: exit 0" "$?" 0
like "agreement: the gold section" "$(cat "$T/agr.txt")" "Gold items (4 with a known answer"
like "agreement: alice's accuracy" "$(grep ' alice ' "$T/agr.txt")" "$ra correct"
like "agreement: bob's accuracy" "$(grep ' bob ' "$T/agr.txt")" "$rb correct"
if command -v python3 >/dev/null 2>&1; then
	dpo-db --db "$DB" agreement --json >"$T/agr.json"
	is "agreement --json: gold per annotator; kappa over the 8 normal pairs only" "$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
g = {a["annotator"]: "%d/%d" % (a["correct"], a["n"]) for a in d["gold"]["annotators"]}
n = sorted(set(k["n"] for k in d["kappa"]))
print(d["gold"]["items"], g.get("alice"), g.get("bob"), g.get("carol"), n)' "$T/agr.json")" "4 $ra $rb None [8]"
else
	echo "ok # skip python3 not available"
fi
dpo-db --db "$DB" report "$T/r.html" >/dev/null 2>&1
is "report: exit 0" "$?" 0
like "report: the gold section" "$(cat "$T/r.html")" "<h2>Gold items</h2>"
like "report: alice's row" "$(tr -d '\n' <"$T/r.html")" "<td>alice</td><td>human</td><td>4</td><td>${ra%/*}</td>"

# exports hold the normal pairs only
dpo-db --db "$DB" export "$T/out.jsonl" >/dev/null 2>&1
is "export: the 8 normal pairs" "$(wc -l <"$T/out.jsonl" | tr -d ' ')" 8
is "export: no gold text" "$(grep -c 'right [0-9]\|wrong [0-9]' "$T/out.jsonl")" 0
is "no warnings on stderr" "$(cat "$T"/alice.err "$T"/bob.err "$T"/carol.err | grep -v 'labeled in this session\|gold items added' | head -3)" ""
done_testing
