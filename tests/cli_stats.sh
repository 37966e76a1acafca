#!/bin/sh
# cli_stats.sh: statistics that mean what they say (issue #12): agreement on
# which completion was preferred, position bias by the order each judgment
# was shown in, labels counted by the source that labelled them, export of
# a split that does not exist.
. "$top_srcdir/tests/tap.sh"

pyget() { python3 -c '
import json,sys
d = json.load(open(sys.argv[1]))
for e in sys.argv[2:]: print(eval(e))' "$@"; }
nth() { printf '%s\n' "$1" | sed -n "$2p"; }
status() { "$@" >/dev/null 2>&1; echo $?; }

# ---- agreement: two sources, ten pairs, agreeing on eight, no ties
# Source one prefers "good N" on all ten prompts; source two on prompts 1-8
# and "bad N" on 9 and 10. One is imported first, so the store keeps each
# chosen completion of one as "a": one votes a x 10, two a x 8, b x 2.
DB=$T/ag.db
i=1
while [ $i -le 10 ]; do
	printf '{"prompt": "Question %d?", "chosen": "good %d", "rejected": "bad %d"}\n' $i $i $i >>"$T/one.jsonl"
	if [ $i -le 8 ]; then
		printf '{"prompt": "Question %d?", "chosen": "good %d", "rejected": "bad %d"}\n' $i $i $i
	else
		printf '{"prompt": "Question %d?", "chosen": "bad %d", "rejected": "good %d"}\n' $i $i $i
	fi >>"$T/two.jsonl"
	i=$((i + 1))
done
ok "import source one" dpo-db --db "$DB" import --quiet --source one "$T/one.jsonl"
ok "import source two" dpo-db --db "$DB" import --quiet --source two "$T/two.jsonl"
is "one's chosen side is stored as a throughout" \
	"$(sqlite3 "$DB" "SELECT group_concat(verdict, '') FROM (SELECT c.verdict FROM comparisons c
	JOIN annotators a ON a.id = c.annotator_id WHERE a.name = 'import:one' ORDER BY c.prompt_id)")" aaaaaaaaaa

# By hand. As counted, the table (one x two) is (a,a) 8, (a,b) 2: raw
# agreement 8/10. Each pair also counts with a and b exchanged: (b,b) 8,
# (b,a) 2 more, so n = 20, p_o = 16/20 = 0.8, and each rater's marginals
# are a 10, b 10: p_e = 0.5 * 0.5 + 0.5 * 0.5 = 0.5; kappa = (0.8 - 0.5) /
# (1 - 0.5) = 0.600. (Taking a/b as information: p_e = 1.0 * 0.8 = 0.8,
# kappa 0.)
# Alpha: coincidences as counted o(a,a) = 16, o(a,b) = o(b,a) = 2, n = 20;
# half as labelled, half exchanged: o(a,a) = o(b,b) = 8, o(a,b) = o(b,a) = 2,
# n_a = n_b = 10; D_o = 4, D_e = 2 * 10 * 10 = 200; alpha = 1 - 19 * 4 / 200
# = 0.620. Observed agreement of the values: 16/20 = 80.0%, n = 20 labels.
# (Taking a/b as information: n_a 18, n_b 2, alpha = 1 - 19 * 4 / 72 = -0.056.)
dpo-db --db "$DB" agreement --json >"$T/ag1.json"
v=$(pyget "$T/ag1.json" '[(k["annotator_1"], k["annotator_2"], k["n"]) for k in d["kappa"]]' \
	'"%.3f %.3f" % (d["kappa"][0]["kappa"], d["kappa"][0]["agreement"])' \
	'"%.3f %.3f %g %d" % (d["alpha"]["value"], d["alpha"]["agreement"], d["alpha"]["values"], d["alpha"]["units"])' \
	'"%.3f %.3f %d" % (d["pooled_kappa"]["kappa"], d["pooled_kappa"]["agreement"], d["pooled_kappa"]["n"])')
is "one pair of sources, 10 pairs" "$(nth "$v" 1)" "[('import:one', 'import:two', 10)]"
is "kappa 0.600 on 80% raw agreement" "$(nth "$v" 2)" "0.600 0.800"
is "alpha 0.620, 80% of 20 values, 10 units" "$(nth "$v" 3)" "0.620 0.800 20 10"
is "pooled kappa = the one pair's" "$(nth "$v" 4)" "0.600 0.800 10"
dpo-db --db "$DB" agreement >"$T/ag1.txt"
is "text: kappa, raw agreement and n on the pair's line" \
	"$(grep 'import:one *import:two' "$T/ag1.txt" | sed 's/  */ /g')" \
	" import:one import:two kappa 0.600 80.0% agreement (n=10)"
like "text: alpha with raw agreement and n" "$(cat "$T/ag1.txt")" \
	"over 10 pairs with 2 or more labels: 0.620  80.0% agreement (n=20 labels)"

# ---- the same with ties: a judge j votes tie, tie, a x 6, b, b on the ten
# pairs (written straight into the tables, as cli_db.sh does).
# kappa(one, j): as counted (a,t) 2, (a,a) 6, (a,b) 2, raw 6/10; with the
# exchanged copy n = 20, p_o = 12/20 = 0.6, one's marginals a 10, b 10,
# j's t 4, a 8, b 8: p_e = 0.5 * 0.4 + 0.5 * 0.4 = 0.4; kappa = 0.2 / 0.6 =
# 1/3 = 0.333.
# kappa(two, j): as counted (a,t) 2, (a,a) 6, (b,b) 2, raw 8/10; p_o = 0.8,
# the same marginals, p_e = 0.4; kappa = 0.4 / 0.6 = 2/3 = 0.667.
# Pooled over the three pairs of raters (tables summed, rows the first name:
# import:one < import:two < j): (one, two) (a,a) 8, (a,b) 2; (one, j) (a,t) 2,
# (a,a) 6, (a,b) 2; (two, j) (a,t) 2, (a,a) 6, (b,b) 2. Sum: 30 items, 22
# agree (73.3%); rows a 28, b 2; columns a 20, b 6, t 4. With the exchanged
# copy (60 items): rows a 30, b 30; columns a 26, b 26, t 8; p_e = 2 * 0.5 *
# 26/60 = 13/30, p_o = 22/30; kappa = (22 - 13) / (30 - 13) = 9/17 = 0.529.
# Alpha (3 raters, 10 units): units 1-2 {a, a, t}, 3-8 {a, a, a}, 9-10
# {a, b, b}. Coincidences (m - 1 = 2): o(a,a) = 2 * 1 + 6 * 3 = 20,
# o(a,t) = o(t,a) = 2, o(a,b) = o(b,a) = 2, o(b,b) = 2; n = 30, observed
# agreement 22/30 = 73.3%. Half exchanged: o(a,a) = o(b,b) = 11, o(a,t) =
# o(t,a) = o(b,t) = o(t,b) = 1, o(a,b) = o(b,a) = 2; n_a = n_b = 14, n_t = 2;
# D_o = 8, D_e = 30^2 - 14^2 - 14^2 - 2^2 = 504; alpha = 1 - 29 * 8 / 504 =
# 34/63 = 0.540.
# Judge vs human (the imports): 20 label pairs, rows j: (t,a) 4, (a,a) 12,
# (b,a) 2, (b,b) 2: raw 14/20 = 70.0%; exchanged copy: rows t 8, a 16,
# b 16, columns a 20, b 20 of 40: p_e = 0.4, p_o = 0.7, kappa = 0.5.
# Without ties (16 pairs): (a,a) 12, (b,a) 2, (b,b) 2: raw 14/16 = 87.5%;
# marginals 16/16 both: p_e = 0.5, kappa = (0.875 - 0.5) / 0.5 = 0.75.
sqlite3 "$DB" "INSERT INTO annotators(kind, name, created_at) VALUES ('judge', 'j', '2026-01-01T00:00:00Z');
INSERT INTO comparisons(prompt_id, completion_a, completion_b, annotator_id, verdict, created_at)
SELECT c.prompt_id, c.completion_a, c.completion_b, (SELECT id FROM annotators WHERE name = 'j'),
  CASE WHEN (SELECT count(*) FROM prompts q WHERE q.id <= c.prompt_id) <= 2 THEN 'tie'
       WHEN (SELECT count(*) FROM prompts q WHERE q.id <= c.prompt_id) <= 8 THEN 'a' ELSE 'b' END,
  '2026-01-01T00:00:00Z'
FROM comparisons c JOIN annotators a ON a.id = c.annotator_id WHERE a.name = 'import:one';"
dpo-db --db "$DB" agreement --json >"$T/ag2.json"
v=$(pyget "$T/ag2.json" '[(k["annotator_1"], k["annotator_2"], k["n"]) for k in d["kappa"]]' \
	'" ".join("%.3f/%.3f" % (k["kappa"], k["agreement"]) for k in d["kappa"])' \
	'"%.3f %.3f %d" % (d["pooled_kappa"]["kappa"], d["pooled_kappa"]["agreement"], d["pooled_kappa"]["n"])' \
	'"%.3f %.3f %g" % (d["alpha"]["value"], d["alpha"]["agreement"], d["alpha"]["values"])' \
	'"%.3f %.3f %d" % tuple(d["judge_vs_human"]["with_ties"][k] for k in ("kappa", "agreement", "n"))' \
	'"%.3f %.3f %d" % tuple(d["judge_vs_human"]["without_ties"][k] for k in ("kappa", "agreement", "n"))' \
	'[(j["judge"], j["with_ties"]["n"], j["without_ties"]["n"]) for j in d["judge_vs_human"]["per_judge"]]')
is "ties: three pairs of raters" "$(nth "$v" 1)" \
	"[('import:one', 'import:two', 10), ('import:one', 'j', 10), ('import:two', 'j', 10)]"
is "ties: kappa 0.600, 1/3, 2/3 with raw 80%, 60%, 80%" "$(nth "$v" 2)" "0.600/0.800 0.333/0.600 0.667/0.800"
is "ties: pooled kappa 9/17 on 22/30" "$(nth "$v" 3)" "0.529 0.733 30"
is "ties: alpha 34/63 on 22/30 values" "$(nth "$v" 4)" "0.540 0.733 30"
is "judge vs human with ties: kappa 0.5, 70% of 20" "$(nth "$v" 5)" "0.500 0.700 20"
is "judge vs human without ties: kappa 0.75, 87.5% of 16" "$(nth "$v" 6)" "0.750 0.875 16"
is "judge vs human per judge" "$(nth "$v" 7)" "[('j', 20, 16)]"
dpo-db --db "$DB" agreement >"$T/ag2.txt"
like "text: judge vs human with ties" "$(sed 's/  */ /g' "$T/ag2.txt")" "with ties: kappa 0.500 70.0% agreement (n=20)"
like "text: pooled kappa" "$(sed 's/  */ /g' "$T/ag2.txt")" "kappa 0.529 73.3% agreement (n=30)"

# ---- stats: labels by the source that labelled them
# Source two brought no prompt of its own (one imported them all first),
# yet labelled ten pairs.
dpo-db --db "$DB" stats --json >"$T/s.json"
v=$(pyget "$T/s.json" 'sorted(d["by_source"])' \
	'[(s["prompts"], s["comparisons"], s["labels"]) for k, s in sorted(d["by_source"].items())]')
is "stats: both sources listed" "$(nth "$v" 1)" "['one', 'two']"
is "stats: prompts by prompt source, labels by labelling source" "$(nth "$v" 2)" "[(10, 30, 10), (0, 0, 10)]"
like "stats text: a labels column" "$(dpo-db --db "$DB" stats)" "labels"
is "stats text: two's row" "$(dpo-db --db "$DB" stats | sed -n '/^by source/,/^$/p' | grep ' two ' | sed 's/  */ /g')" \
	" two 0 0 0 10"

# ---- export --split with a split that does not exist
is "export --split nosuch: exit 1" "$(status dpo-db --db "$DB" export - --split nosuch)" 1
like "export --split nosuch: names the known splits" "$(dpo-db --db "$DB" export - --split nosuch 2>&1)" \
	'no split "nosuch" in '"$DB"'; the splits are: train (10 prompts)'
is "export --split nosuch writes no file" "$(status dpo-db --db "$DB" export "$T/x.jsonl" --split nosuch; test -e "$T/x.jsonl" && echo made)" 1
is "export --split train still works" "$(dpo-db --db "$DB" export - --split train 2>/dev/null | wc -l | tr -d ' ')" 10

# ---- position bias by the order each judgment was shown in
# A verifier that prefers the "good" response: consistent in both orders.
# dpo-judge shows each pair twice (a first, then b first); the good
# completion wins once in first place and once in second: 10 of 20.
J=$T/j.db
cp "$T/one.jsonl" "$T/j.jsonl"
dpo-db --db "$J" import --quiet --source one "$T/j.jsonl"
GOOD='python3 -c "import json,sys; d=json.load(sys.stdin); print(\"A\" if \"good\" in d[\"response_a\"] else \"B\")"'
dpo-judge --db "$J" --provider exec --command "$GOOD" --include-labeled --json -q >"$T/j1.json" 2>"$T/j1.err"
is "judge both orders: exit 0" "$?" 0
is "dpo-judge: first-position win rate 0.5" "$(pyget "$T/j1.json" 'd["first_position_win_rate"]')" 0.5
dpo-db --db "$J" stats --json >"$T/js.json"
is "stats: the same judge wins first place in 10 of 20 judgments" \
	"$(pyget "$T/js.json" '[(v["n"], v["first_shown_wins"], v["share"]) for k, v in d["position_bias"].items() if v["kind"] == "judge"]')" \
	"[(20, 10, 0.5)]"
like "stats text: 50.0%" "$(dpo-db --db "$J" stats)" "50.0%  (10 of 20)"

# A judge that always picks the response shown first: inconsistent on every
# pair (stored as ties), first place wins all 20 judgments, as dpo-judge says.
J2=$T/j2.db
dpo-db --db "$J2" import --quiet --source one "$T/j.jsonl"
dpo-judge --db "$J2" --provider exec --command "cat >/dev/null; echo A" --include-labeled --json -q >"$T/j2.json" 2>/dev/null
is "dpo-judge: biased judge, first-position win rate 1" "$(pyget "$T/j2.json" 'd["first_position_win_rate"]')" 1
dpo-db --db "$J2" stats --json >"$T/js2.json"
is "stats: the biased judge wins first place in 20 of 20" \
	"$(pyget "$T/js2.json" '[(v["n"], v["first_shown_wins"]) for k, v in d["position_bias"].items() if v["kind"] == "judge"]')" \
	"[(20, 20)]"

# One order per pair (--no-swap): shown_first says which; the biased judge
# wins first place in each of its 10 judgments.
J3=$T/j3.db
dpo-db --db "$J3" import --quiet --source one "$T/j.jsonl"
dpo-judge --db "$J3" --provider exec --command "cat >/dev/null; echo A" --no-swap --include-labeled -q >/dev/null 2>&1
dpo-db --db "$J3" stats --json >"$T/js3.json"
is "stats: one order per pair, 10 of 10 first" \
	"$(pyget "$T/js3.json" '[(v["n"], v["first_shown_wins"]) for k, v in d["position_bias"].items() if v["kind"] == "judge"]')" \
	"[(10, 10)]"

done_testing
