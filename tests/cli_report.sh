#!/bin/sh
# dpo-db report: one self-contained, well-formed HTML page with inline SVG
# charts (label distribution, position bias, training curves), agreement and
# consistency tables, and no network reference.
. "$top_srcdir/tests/tap.sh"
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3
elif command -v python3 >/dev/null 2>&1; then PY=python3
else skip_all "python3 is needed to check the HTML"; fi
dpo-db report --help >/dev/null 2>&1 ||
	skip_all "dpo-db has no report command (store/dpo-db.c must dispatch to db_cmd_report)"

DB=$T/r.db
dpo-db --db "$DB" init >/dev/null 2>&1
# labelled pairs from an import, then a judge that always prefers the
# first-shown response, one order per pair: 100% position bias
dpo-db --db "$DB" import -q "$top_srcdir/share/examples/preferences.jsonl" >/dev/null 2>&1
dpo-judge --db "$DB" --provider exec --command "cat >/dev/null; echo A" --include-labeled --no-swap \
	--concurrency 2 -q >/dev/null 2>&1
ok "store has judge labels" test "$(sqlite3 "$DB" "select count(*) from comparisons c join annotators a on a.id = c.annotator_id where a.kind = 'judge'")" -gt 0
# a training run with per-step metrics
dpo-model init --config "$top_srcdir/share/task/config.json" --tokenizer "$top_srcdir/share/task" \
	--out "$T/m" --seed 1 >/dev/null 2>&1
dpo-train --from-db --db "$DB" --split train --model "$T/m" --out "$T/p" --max-length 32 --chat-format chatml \
	--steps 3 --batch-size 2 --lr 1e-3 --quiet --threads 1 >"$T/train.out" 2>&1
ok "a training run with metrics" test "$(sqlite3 "$DB" "select count(*) from metrics where name = 'loss'")" -ge 3

dpo-db --db "$DB" report "$T/r.html" --title 'Report <&> "test"' >/dev/null 2>"$T/r.err"
is "report: exit 0" "$?" 0
ok "report: file written" test -s "$T/r.html"
ok "report: well-formed (parses as XML)" $PY -c '
import sys, xml.dom.minidom
xml.dom.minidom.parse(sys.argv[1])' "$T/r.html"
html=$(cat "$T/r.html")
like "report: HTML5 page" "$html" "<!DOCTYPE html>"
like "report: title escaped" "$html" "<title>Report &lt;&amp;&gt; &quot;test&quot;</title>"
n=$(grep -c "<svg" "$T/r.html")
ok "report: inline SVG charts ($n)" test "$n" -ge 5
like "report: label distribution" "$html" "<title>Verdicts of all comparisons</title>"
like "report: agreement" "$html" "Krippendorff"
like "report: kappa table (import vs judge)" "$html" "Cohen's kappa"
like "report: position bias chart" "$html" "won by the first-shown response</title>"
like "report: first-shown always wins" "$html" "100.0% of"
like "report: training loss curve" "$html" "<title>loss</title>"
like "report: rewards/margins curve" "$html" "<title>rewards/margins</title>"
like "report: rewards/accuracies curve" "$html" "<title>rewards/accuracies</title>"
ok "report: a curve has points" grep -q '<polyline fill="none" stroke="[^"]*" stroke-width="1.5" points="[0-9.]*,[0-9.]* [0-9.]*,[0-9.]*' "$T/r.html"
fails "report: no http(s) reference" grep -Eqi 'https?://' "$T/r.html"
fails "report: no script" grep -qi '<script' "$T/r.html"
# to standard output, and on an empty store
dpo-db --db "$DB" report - --title 'Report <&> "test"' >"$T/o.html" 2>/dev/null
is "report to stdout: exit 0" "$?" 0
ok "report to stdout: the same page" cmp -s "$T/o.html" "$T/r.html"
dpo-db --db "$T/empty.db" init >/dev/null 2>&1
dpo-db --db "$T/empty.db" report "$T/e.html" >/dev/null 2>&1
is "empty store: exit 0" "$?" 0
ok "empty store: well-formed" $PY -c '
import sys, xml.dom.minidom
xml.dom.minidom.parse(sys.argv[1])' "$T/e.html"
like "empty store: says so" "$(cat "$T/e.html")" "No comparisons yet."
# errors
dpo-db --db "$DB" report >/dev/null 2>&1
is "no output file: exit 2" "$?" 2
dpo-db --db "$DB" report "$T/nodir/x.html" >/dev/null 2>"$T/nd.err"
is "unwritable output: exit 1" "$?" 1
like "unwritable output: names the file" "$(cat "$T/nd.err")" "nodir/x.html"
dpo-db --db "$T/missing.db" report "$T/m.html" >/dev/null 2>&1
is "missing database: exit 1" "$?" 1
dpo-db report "$T/d.html" --db "$DB" --title 'Report <&> "test"' >/dev/null 2>&1
is "--db after the command: exit 0" "$?" 0
ok "--db after the command: the same page" cmp -s "$T/d.html" "$T/r.html"
printf '[dpo-db report]\ntitle = From the config\n' >"$T/config"
DPO_CONFIG="$T/config" dpo-db --db "$DB" report - >"$T/c.html" 2>/dev/null
like "config: [dpo-db report] title" "$(cat "$T/c.html")" "<title>From the config</title>"
like "report --help: its options" "$(dpo-db report --help)" "--title TEXT"
done_testing
