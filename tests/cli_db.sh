#!/bin/sh
# cli_db.sh: dpo-db init/check/stats/agreement/split/export and usage errors.
. "$top_srcdir/tests/tap.sh"
D="$top_srcdir/tests/data/store"
EX="$top_srcdir/share/examples/preferences.jsonl"
DB="$T/a.db"

# pyget FILE EXPR...: load the JSON document d from FILE (failing if it is
# not one) and print each EXPR evaluated over it on a line of its own.
# Python starts slowly, so each document is read once.
pyget() { python3 -c '
import json,sys
d = json.load(open(sys.argv[1]))
for e in sys.argv[2:]: print(eval(e))' "$@"; }
# line N of $1
nth() { printf '%s\n' "$1" | sed -n "$2p"; }
status() { "$@" >/dev/null 2>&1; echo $?; }

# ---- help, version, usage errors
ok "--help" dpo-db --help
like "--help lists the commands" "$(dpo-db --help)" "agreement"
ok "-h" dpo-db -h
like "--version" "$(dpo-db --version)" "dpo-db (dpo)"
is "no command: exit 2" "$(status dpo-db)" 2
is "unknown command: exit 2" "$(status dpo-db --db "$DB" frobnicate)" 2
like "unknown command is named" "$(dpo-db --db "$DB" frobnicate 2>&1)" "unknown command 'frobnicate'"
is "unknown global option: exit 2" "$(status dpo-db --frob init)" 2
is "unknown subcommand option: exit 2" "$(status dpo-db --db "$DB" stats --frob)" 2
is "init with an extra argument: exit 2" "$(status dpo-db --db "$DB" init extra)" 2
ok "subcommand --help" dpo-db stats --help

# ---- init, check, --db resolution
like "init prints path and schema version" "$(dpo-db --db "$DB" init)" "$DB: schema version"
ok "database file created" test -f "$DB"
ok "init again (idempotent)" dpo-db --db "$DB" init
(cd "$T" && dpo-db init >/dev/null 2>&1)
ok "default database ./dpo.db" test -f "$T/dpo.db"
DPO_DB="$T/env.db" dpo-db init >/dev/null 2>&1
ok "\$DPO_DB is used" test -f "$T/env.db"
dpo-db --db "$T/after.db" init >/dev/null 2>&1
ok "--db after the command is accepted" dpo-db init --db "$T/after2.db"
ok "check passes" dpo-db --db "$DB" check
like "check reports" "$(dpo-db --db "$DB" check)" "integrity check: ok"
printf 'this is not a database at all, just text, long enough for a header.......................\n' >"$T/junk.db"
is "check on a text file: exit 1" "$(status dpo-db --db "$T/junk.db" check)" 1
like "the error names the file" "$(dpo-db --db "$T/junk.db" check 2>&1)" "$T/junk.db: not a dpo database"
cp "$DB" "$T/newer.db"
sqlite3 "$T/newer.db" "PRAGMA user_version = 99"
is "a newer schema: exit 1" "$(status dpo-db --db "$T/newer.db" check)" 1
like "says it is newer" "$(dpo-db --db "$T/newer.db" stats 2>&1)" "newer"

# ---- stats on an empty and on a filled database
ok "stats on an empty database" dpo-db --db "$DB" stats
dpo-db --db "$DB" stats --json >"$T/s0.json"
ok "import the example" dpo-db --db "$DB" import "$EX"
dpo-db --db "$DB" stats >"$T/stats.txt"
like "stats text shows totals" "$(cat "$T/stats.txt")" "totals: 12 prompts, 24 completions, 12 comparisons"
like "stats text shows resolvable pairs" "$(cat "$T/stats.txt")" "resolvable pairs: majority 12"
dpo-db --db "$DB" stats --json >"$T/s1.json"
v=$(pyget "$T/s0.json" 'd["totals"]["prompts"]')
is "stats --json on an empty database is JSON" "$v" 0
v=$(pyget "$T/s1.json" 'd["totals"]["prompts"]' 'd["by_split"]["train"]["comparisons"]' \
	'd["verdicts"]["a"] + d["verdicts"]["b"]' 'sorted(d["resolvable_pairs"].values())')
is "stats --json prompts" "$(nth "$v" 1)" 12
is "stats --json by split" "$(nth "$v" 2)" 12
is "stats --json verdicts" "$(nth "$v" 3)" 12
is "stats --json pairs per policy" "$(nth "$v" 4)" "[12, 12, 12, 12]"

# ---- export and the round trip
dpo-db --db "$DB" export - >"$T/out.jsonl" 2>/dev/null
is "export - writes one line per pair" "$(wc -l <"$T/out.jsonl" | tr -d ' ')" 12
for f in trl trl-conversational hh; do
	rm -f "$T/rt.db"
	dpo-db --db "$DB" export "$T/e1.$f.jsonl" --format "$f" 2>/dev/null
	dpo-db --db "$T/rt.db" import --quiet "$T/e1.$f.jsonl" >/dev/null 2>&1
	dpo-db --db "$T/rt.db" export --format="$f" "$T/e2.$f.jsonl" 2>/dev/null
	ok "$f: export -> import -> export is byte-identical" cmp "$T/e1.$f.jsonl" "$T/e2.$f.jsonl"
done
ok "exported lines: JSON, keys in order; hh lines are transcripts" python3 -c '
import json,sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    assert list(d) == ["prompt", "chosen", "rejected"], list(d)
for l in open(sys.argv[2]):
    d = json.loads(l)
    assert list(d) == ["chosen", "rejected"]
    for k in d: assert d[k].startswith("\n\nHuman: ") and "\n\nAssistant: " in d[k]' "$T/out.jsonl" "$T/e1.hh.jsonl"
like "non-ASCII written raw" "$(cat "$T/e1.trl.jsonl")" "100 °C"
dpo-db --db "$DB" export "$T/out.jsonl.gz" 2>/dev/null
ok "export .gz is gzip" sh -c "gzip -dc '$T/out.jsonl.gz' | cmp - '$T/e1.trl.jsonl'"
echo "old content" >"$T/keep.jsonl"
is "unknown policy: exit 2" "$(status dpo-db --db "$DB" export "$T/keep.jsonl" --resolve dictator)" 2
is "unknown format: exit 2" "$(status dpo-db --db "$DB" export "$T/keep.jsonl" --format csv)" 2
is "bad --min-annotations: exit 2" "$(status dpo-db --db "$DB" export "$T/keep.jsonl" --min-annotations x)" 2
is "no output given: exit 2" "$(status dpo-db --db "$DB" export)" 2
is "the output was left alone" "$(cat "$T/keep.jsonl")" "old content"
is "export into a missing directory: exit 1" "$(status dpo-db --db "$DB" export "$T/no/such/dir/x.jsonl")" 1
is "no temporary files left behind" "$(ls "$T" | grep -c '\.tmp\.')" 0
is "--min-annotations 2: nothing decided twice" "$(dpo-db --db "$DB" export - --min-annotations 2 2>/dev/null | wc -l | tr -d ' ')" 0

# ---- split
dpo-db --db "$DB" split --test-fraction 0.5 --seed 7 >"$T/split1.txt"
ok "split" test -s "$T/split1.txt"
like "split prints counts" "$(cat "$T/split1.txt")" "train: "
dpo-db --db "$DB" export - --split test 2>/dev/null >"$T/test1.jsonl"
# (#12: test is left alone unless --from names it, so both go back in)
dpo-db --db "$DB" split --test-fraction 0.9 --seed 3 --from train,test >/dev/null
dpo-db --db "$DB" split --test-fraction 0.5 --seed 7 --from train --from test >"$T/split2.txt"
dpo-db --db "$DB" export - --split test 2>/dev/null >"$T/test2.jsonl"
is "split is deterministic (same counts)" "$(head -n 2 "$T/split2.txt")" "$(head -n 2 "$T/split1.txt")"
ok "split is deterministic (same prompts)" cmp "$T/test1.jsonl" "$T/test2.jsonl"
ntest=$(sed -n 's/^test: //p' "$T/split1.txt")
is "export --split test exports the test prompts" "$(wc -l <"$T/test1.jsonl" | tr -d ' ')" "$ntest"
is "train + test = all" "$(($(sed -n 's/^train: //p' "$T/split1.txt") + ntest))" 12
dpo-db --db "$DB" split --test-fraction 0 --from test >/dev/null
is "fraction 0: no test prompts" "$(dpo-db --db "$DB" export - --split test 2>/dev/null | wc -l | tr -d ' ')" 0
is "split without --test-fraction: exit 2" "$(status dpo-db --db "$DB" split)" 2
is "split --test-fraction 2: exit 2" "$(status dpo-db --db "$DB" split --test-fraction 2)" 2
is "split --seed -1: exit 2" "$(status dpo-db --db "$DB" split --test-fraction 0.1 --seed -1)" 2

# #12: split never moves a prompt out of a split the user named
S="$T/splits.db"
PR="$top_srcdir/tests/data/task/prompts.jsonl"
i=0
while [ $i -lt 40 ]; do printf '{"prompt": "split prompt %d"}\n' $i; i=$((i + 1)); done >"$T/p-train.jsonl"
i=0
while [ $i -lt 10 ]; do printf '{"prompt": "validation prompt %d"}\n' $i; i=$((i + 1)); done >"$T/p-val.jsonl"
dpo-db --db "$S" import -q --format prompts --split train "$T/p-train.jsonl" >/dev/null 2>&1
dpo-db --db "$S" import -q --format prompts --split test "$PR" >/dev/null 2>&1
dpo-db --db "$S" import -q --format prompts --split validation "$T/p-val.jsonl" >/dev/null 2>&1
splits() { sqlite3 "$1" "SELECT split, count(*) FROM prompts GROUP BY split ORDER BY split" | tr '\n' ' '; }
is "splits imported" "$(splits "$S")" "test|8 train|40 validation|10 "
sqlite3 "$S" "SELECT id, split FROM prompts ORDER BY id" >"$T/sp0.txt"
dpo-db --db "$S" split --test-fraction 0.5 --seed 7 --dry-run >"$T/spd.txt"
is "split --dry-run: exit 0" "$?" 0
sqlite3 "$S" "SELECT id, split FROM prompts ORDER BY id" >"$T/sp1.txt"
ok "split --dry-run changes nothing" cmp "$T/sp0.txt" "$T/sp1.txt"
sqlite3 "$S" .dump >"$T/sp0.dump"
dpo-db --db "$S" split --test-fraction 1 --from validation,test --dry-run >/dev/null
sqlite3 "$S" .dump >"$T/sp1.dump"
ok "split --dry-run: the dump is the same" cmp "$T/sp0.dump" "$T/sp1.dump"
like "split --dry-run says so" "$(head -n 1 "$T/spd.txt")" "dry run: nothing written"
like "split --dry-run: test left alone" "$(cat "$T/spd.txt")" "from test: 8 left alone"
like "split --dry-run: validation left alone" "$(cat "$T/spd.txt")" "from validation: 10 left alone"
dpo-db --db "$S" split --test-fraction 0.5 --seed 7 >"$T/spr.txt"
is "split --dry-run: the same counts as the split" "$(sed 1d "$T/spd.txt" | sed 's/would move/moved/; s/would stay/stayed/g')" \
	"$(cat "$T/spr.txt")"
moved=$(sed -n 's/^from train: \([0-9]*\) moved to test, \([0-9]*\) stayed in train$/\1 \2/p' "$T/spr.txt")
set -- $moved 0 0
is "split: train's 40 prompts counted" "$(($1 + $2))" 40
is "split: only train prompts moved" "$(splits "$S")" "test|$((8 + $1)) train|$2 validation|10 "
is "split: the official test prompts are still in test" \
	"$(sqlite3 "$S" "SELECT count(*) FROM prompts WHERE split = 'test' AND content LIKE '%>'")" 8
is "split: validation untouched" "$(sqlite3 "$S" "SELECT count(*) FROM prompts WHERE split = 'validation'")" 10
is "split: the test/validation rows are the same" \
	"$(sqlite3 "$S" "SELECT id FROM prompts WHERE content NOT LIKE 'split prompt%' ORDER BY id" | tr '\n' ' ')" \
	"$(grep -v "|train" "$T/sp0.txt" | cut -d'|' -f1 | tr '\n' ' ')"
like "split prints validation's count" "$(cat "$T/spr.txt")" "validation: 10"
dpo-db --db "$S" split --test-fraction 0.5 --seed 7 --from validation --json >"$T/spv.json"
v=$(pyget "$T/spv.json" 'd["splits"].get("validation", 0)' \
	'sum(m["prompts"] for m in d["moves"] if m["from"] == "validation")' 'sorted(d["left_alone"])' 'd["dry_run"]')
is "split --from validation: validation emptied" "$(nth "$v" 1)" 0
is "split --from validation: its 10 prompts reassigned" "$(nth "$v" 2)" 10
is "split --from validation: train and test left alone" "$(nth "$v" 3)" "['test', 'train']"
is "split --json: dry_run false" "$(nth "$v" 4)" False
is "split --from validation: no validation prompt left" \
	"$(sqlite3 "$S" "SELECT count(*) FROM prompts WHERE split = 'validation'")" 0
is "split --from validation: train prompts did not move" \
	"$(sqlite3 "$S" "SELECT count(*) FROM prompts WHERE split = 'train' AND content LIKE 'split prompt%'")" "$2"
is "split --from a split no prompt is in: exit 1" "$(status dpo-db --db "$S" split --test-fraction 0.5 --from validaton)" 1
like "split --from a split no prompt is in: names the splits" \
	"$(dpo-db --db "$S" split --test-fraction 0.5 --from validaton 2>&1)" 'no split "validaton"'
S2="$T/splits2.db"
cp "$S" "$S2"
dpo-db --db "$S2" split --test-fraction 0.5 --seed 11 >"$T/d1.txt"
sqlite3 "$S2" "SELECT id, split FROM prompts ORDER BY id" >"$T/d1.ids"
cp "$S" "$S2"
dpo-db --db "$S2" split --test-fraction 0.5 --seed 11 >"$T/d2.txt"
sqlite3 "$S2" "SELECT id, split FROM prompts ORDER BY id" >"$T/d2.ids"
ok "split --from train: deterministic (same seed, same assignment)" cmp "$T/d1.ids" "$T/d2.ids"

# #12: names printed as text have their control characters escaped
ESC=$(printf '\033')
EV="$T/evil.db"
dpo-db --db "$EV" import --source "evil${ESC}[2J" --split "val${ESC}]0;x" "$EX" >"$T/ev-imp.txt" 2>"$T/ev-imp.err"
is "import --source with an escape: exit 0" "$?" 0
dpo-db --db "$EV" stats >"$T/ev-stats.txt"
like "stats: the source's escape written as \\x1b" "$(cat "$T/ev-stats.txt")" 'evil\x1b[2J'
like "stats: the split's escape written as \\x1b" "$(cat "$T/ev-stats.txt")" 'val\x1b]0;x'
is "stats: no ESC byte" "$(od -An -c "$T/ev-stats.txt" | grep -c '033')" 0
is "import summary: no ESC byte" "$(cat "$T/ev-imp.txt" "$T/ev-imp.err" | grep -c "$ESC")" 0
like "import summary: the source escaped" "$(cat "$T/ev-imp.txt")" 'source evil\x1b[2J'
dpo-db --db "$EV" stats --json >"$T/ev-stats.json"
is "stats --json: the name as JSON writes it" "$(pyget "$T/ev-stats.json" '"evil\x1b[2J" in d["by_source"]')" True
dpo-db --db "$EV" import -q --source "two${ESC}[1m" "$EX" >/dev/null 2>&1
dpo-db --db "$EV" agreement >"$T/ev-ag.txt"
is "agreement: no ESC byte" "$(grep -c "$ESC" "$T/ev-ag.txt")" 0
like "agreement: the annotator escaped" "$(cat "$T/ev-ag.txt")" 'import:two\x1b[1m'
dpo-db --db "$EV" split --test-fraction 0.5 --from "val${ESC}]0;x" --dry-run >"$T/ev-split.txt"
is "split: no ESC byte" "$(grep -c "$ESC" "$T/ev-split.txt")" 0
like "split: the split escaped" "$(cat "$T/ev-split.txt")" 'from val\x1b]0;x: '
dpo-db --db "$EV" export - --split "no${ESC}[2J" >/dev/null 2>"$T/ev-exp.err"
is "export warning: no ESC byte" "$(grep -c "$ESC" "$T/ev-exp.err")" 0
like "export warning: names escaped" "$(cat "$T/ev-exp.err")" 'no split "no\x1b[2J"'
dpo-db --db "$EV" check >"$T/ev-check.txt" 2>&1
is "check: no ESC byte" "$(grep -c "$ESC" "$T/ev-check.txt")" 0

# ---- agreement on two sources labelling the same pairs
A="$T/agree.db"
dpo-db --db "$A" import --quiet --format candidates "$D/candidates.jsonl" >/dev/null 2>&1
dpo-db --db "$A" import --quiet --source one "$D/labels_1.jsonl" >/dev/null 2>&1
dpo-db --db "$A" import --quiet --source two "$D/labels_2.jsonl" >/dev/null 2>&1
ok "agreement" dpo-db --db "$A" agreement
like "agreement text names the annotators" "$(dpo-db --db "$A" agreement)" "import:one"
dpo-db --db "$A" agreement --json >"$T/ag.json"
v=$(pyget "$T/ag.json" 'len(d["kappa"])' 'd["kappa"][0]["n"]' 'round(d["kappa"][0]["kappa"], 9)' \
	'round(d["alpha"]["value"], 9)' 'd["judge_vs_human"]["with_ties"]["n"]')
is "agreement --json: one pair of annotators" "$(nth "$v" 1)" 1
is "kappa n" "$(nth "$v" 2)" 6
is "kappa = 1/3 (po 4/6, pe 1/2)" "$(nth "$v" 3)" 0.333333333
is "alpha = 7/18" "$(nth "$v" 4)" 0.388888889
is "no judges: judge-vs-human n = 0" "$(nth "$v" 5)" 0
is "majority resolves the 4 agreed pairs" "$(dpo-db --db "$A" export - 2>/dev/null | wc -l | tr -d ' ')" 4
is "both sources agree on them" "$(dpo-db --db "$A" export - --min-annotations 2 2>/dev/null | wc -l | tr -d ' ')" 4
dpo-db --db "$A" stats --json >"$T/s2.json"
v=$(pyget "$T/s2.json" '[v["comparisons"] for v in d["by_annotator"].values()]' 'd["resolvable_pairs"]["unanimous"]')
is "stats: two annotators with 6 comparisons each" "$(nth "$v" 1)" "[6, 6]"
is "stats: unanimous pairs" "$(nth "$v" 2)" 4

# A judge joins (written straight into the tables: judges run elsewhere),
# voting a, b, tie, b, b, a on the six pairs in prompt order. By hand:
# kappa(one, j1) = 1/7, kappa(two, j1) = 3/7 (the same whether or not each
# pair also counts with a and b exchanged: one's and two's marginals are
# already 3 a, 3 b); alpha over three raters, each pair counted half as
# labelled and half with a and b exchanged: values a 8, b 9, tie 1 become
# 8.5, 8.5, 1 (n = 18), D_o = 7 either way, D_e = 18^2 - 2 * 8.5^2 - 1 =
# 178.5, alpha = 1 - 17 * 7 / 178.5 = 1/3 (59/178 when the a/b order was
# taken as information); judge vs human: 7 of 12 label pairs agree with ties, 7 of 10
# without (the tie item left out).
sqlite3 "$A" "INSERT INTO annotators(kind, name, created_at) VALUES ('judge', 'j1', '2026-01-01T00:00:00Z');
INSERT INTO comparisons(prompt_id, completion_a, completion_b, annotator_id, verdict, created_at)
SELECT c.prompt_id, c.completion_a, c.completion_b, (SELECT id FROM annotators WHERE name = 'j1'),
  CASE (SELECT count(*) FROM prompts q WHERE q.id <= c.prompt_id)
    WHEN 1 THEN 'a' WHEN 2 THEN 'b' WHEN 3 THEN 'tie' WHEN 4 THEN 'b' WHEN 5 THEN 'b' ELSE 'a' END,
  '2026-01-01T00:00:00Z'
FROM comparisons c JOIN annotators a ON a.id = c.annotator_id WHERE a.name = 'import:one';"
dpo-db --db "$A" agreement --json >"$T/ag2.json"
v=$(pyget "$T/ag2.json" '[(k["annotator_1"], k["annotator_2"], k["n"]) for k in d["kappa"]]' \
	'round(d["kappa"][1]["kappa"], 9)' 'round(d["kappa"][2]["kappa"], 9)' 'round(d["alpha"]["value"], 9)' \
	'd["alpha"]["units"]' \
	'(round(d["judge_vs_human"]["with_ties"]["agreement"], 9), d["judge_vs_human"]["with_ties"]["n"])' \
	'(round(d["judge_vs_human"]["without_ties"]["agreement"], 9), d["judge_vs_human"]["without_ties"]["n"])')
is "three pairs of annotators, sorted, 6 items each" "$(nth "$v" 1)" \
	"[('import:one', 'import:two', 6), ('import:one', 'j1', 6), ('import:two', 'j1', 6)]"
is "kappa(one, j1) = 1/7" "$(nth "$v" 2)" 0.142857143
is "kappa(two, j1) = 3/7" "$(nth "$v" 3)" 0.428571429
is "alpha over three raters = 1/3" "$(nth "$v" 4)" 0.333333333
is "alpha units" "$(nth "$v" 5)" 6
is "judge vs human with ties: 7/12" "$(nth "$v" 6)" "(0.583333333, 12)"
is "judge vs human without ties: 7/10" "$(nth "$v" 7)" "(0.7, 10)"
like "agreement text shows judge vs human" "$(dpo-db --db "$A" agreement)" "58.3% agreement (n=12)"
dpo-db --db "$A" split --test-fraction 0.5 --seed 3 --json >"$T/split.json"
is "split --json" "$(pyget "$T/split.json" 'd["train"] + d["test"]')" 6
ok "check after everything" dpo-db --db "$A" check

# ---- one option table per subcommand (util/opt.h)
for c in init check import export stats agreement split report; do
	ok "$c --help: exit 0" dpo-db "$c" --help
	like "$c --help: its own usage line" "$(cat "$T/.out")" "Usage: dpo-db $c "
done
h=$(dpo-db export --help)
like "export --help shows --resolve" "$h" "--resolve POLICY"
like "export --help shows --min-annotations and its default" "$h" "agreeing"
like "export --help shows --format's default" "$h" "(default trl)"
case $h in *--json*|*"position bias"*) r=1 ;; *) r=0 ;; esac
is "export --help shows no option of stats" "$r" 0
h=$(dpo-db stats --help)
like "stats --help shows --json" "$h" "--json"
case $h in *--resolve*|*--format*) r=1 ;; *) r=0 ;; esac
is "stats --help shows no option of export" "$r" 0
like "global --help lists every command" "$(dpo-db --help)" "report"
like "global --help: each command has its own --help" "$(dpo-db --help)" "dpo-db COMMAND --help"
is "split --test-fraction 2: exit 2" "$(status dpo-db --db "$DB" split --test-fraction 2)" 2
is "split --test-fraction 2: the range wording" "$(dpo-db --db "$DB" split --test-fraction 2 2>&1 | head -n 1)" \
	'dpo-db split: --test-fraction: expected a number in [0, 1], got "2"'
is "export --min-annotations -1: the range wording" \
	"$(dpo-db --db "$DB" export - --min-annotations -1 2>&1 | head -n 1)" \
	'dpo-db export: --min-annotations: expected an integer in [0, 1000000], got "-1"'
is "export --resolve: the choices wording" "$(dpo-db --db "$DB" export - --resolve dictator 2>&1 | head -n 1)" \
	'dpo-db export: --resolve: expected one of majority, humans-over-judges, unanimous, consistent-judge, got "dictator"'
is "unknown export option: exit 2" "$(status dpo-db --db "$DB" export - --frob)" 2
like "unknown export option: named, with the hint" "$(dpo-db --db "$DB" export - --frob 2>&1)" \
	"dpo-db export: unknown option --frob
Try 'dpo-db export --help' for more information."
is "--json where stats has none: exit 2" "$(status dpo-db --db "$DB" check --json)" 2
# every policy stats counts is one --resolve accepts (the table's choices are store_policies)
is "stats names the four resolution policies" "$(pyget "$T/s1.json" 'len(d["resolvable_pairs"])')" 4
for p in $(pyget "$T/s1.json" '" ".join(d["resolvable_pairs"])'); do
	ok "export --resolve $p" dpo-db --db "$DB" export - --resolve "$p"
done
# --db after the subcommand, and over the one before it
dpo-db stats --json --db "$A" >"$T/sa.json"
is "stats --db after the command reads that database" "$(pyget "$T/sa.json" 'd["totals"]["prompts"]')" 6
dpo-db --db "$DB" stats --json --db "$A" >"$T/sa2.json"
is "--db after the command wins over --db before it" "$(pyget "$T/sa2.json" 'd["database"]')" "$A"
dpo-db --db "$A" export "$T/ea1.jsonl" 2>/dev/null
dpo-db export - --db="$A" >"$T/ea2.jsonl" 2>/dev/null
ok "export --db=PATH after the command" cmp "$T/ea1.jsonl" "$T/ea2.jsonl"
# the config file: [dpo-db export] sets export's defaults; the command line wins
printf '# test config\n[dpo-db export]\nformat = hh\nresolve = "unanimous"\n[dpo-db stats]\njson = true\n' >"$T/config"
DPO_CONFIG="$T/config" dpo-db --db "$DB" export "$T/c1.jsonl" 2>"$T/c1.err"
is "config: export uses format = hh" "$(head -n 1 "$T/c1.jsonl" | cut -c 1-22)" '{"chosen": "\n\nHuman:'
like "config: and resolve = unanimous" "$(cat "$T/c1.err")" "(hh, unanimous)"
DPO_CONFIG="$T/config" dpo-db --db "$DB" export "$T/c2.jsonl" --format trl 2>/dev/null
ok "config: --format on the command line wins" cmp "$T/c2.jsonl" "$T/e1.trl.jsonl"
like "config: export --help names the value's origin" "$(DPO_CONFIG="$T/config" dpo-db export --help)" \
	"(default hh, from $T/config)"
like "config: [dpo-db stats] json = true" "$(DPO_CONFIG="$T/config" dpo-db --db "$DB" stats)" '"totals": {'
like "config: another command's section does not apply" "$(DPO_CONFIG="$T/config" dpo-db --db "$DB" agreement)" \
	"Cohen's kappa per pair"
printf '[dpo-db split]\ntest-fraction = 0.5\nseed = 7\n' >"$T/config2"
DPO_CONFIG="$T/config2" dpo-db --db "$DB" split >"$T/split3.txt"
ok "config: split's --test-fraction and --seed from the file" cmp "$T/split1.txt" "$T/split3.txt"
printf '[dpo-db export]\nformat = csv\n' >"$T/config3"
is "config: a bad value: exit 2" "$(DPO_CONFIG="$T/config3" status dpo-db --db "$DB" export -)" 2
like "config: a bad value names the file and line" "$(DPO_CONFIG="$T/config3" dpo-db --db "$DB" export - 2>&1)" \
	"$T/config3:2: format: expected one of trl, trl-conversational, hh"
printf '[dpo-db export]\ndb = %s\n' "$A" >"$T/config4"
is "config: --db may not come from the file" "$(DPO_CONFIG="$T/config4" status dpo-db --db "$DB" export -)" 2

done_testing
