#!/bin/sh
# cli_db_judgment_files.sh: other people's judgments in the very layout their
# files have (issue #13): the two splits of MT-Bench's human judgments
# dataset (human: question_id, model_a, model_b, winner, judge,
# conversation_a, conversation_b as [{content, role}], turn; gpt4_pair: the
# same with judge "gpt4_pair"), one JSON object a line as `datasets` writes
# them, and AlpacaEval's alpaca_eval_gpt4 annotations.json (a pretty-printed
# JSON array as pandas writes it: ASCII escapes, "\/"). What is stored is
# checked against a reference python3 computes from the files; a turn-2
# judgment whose first answers differ is refused with its reason (each
# answer follows its own conversation: not two answers to one prompt).
. "$top_srcdir/tests/tap.sh"

D=$top_srcdir/tests/data/labels
DB=$T/j.db
summary() { sed 's/^[^:]*: //' "$T/.out"; }

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import sqlite3' 2>/dev/null; then
	skip_all "python3 with sqlite3 is needed for the reference"
fi

# python3 check.py DB KIND FILE: "ok" when the labels of FILE's annotators in
# DB are exactly those the file gives (kind mtbench: the judgments whose
# conversations agree before the judged answer; alpaca: every annotation),
# texts, models, verdicts and annotators compared; else what differs.
cat >"$T/check.py" <<'EOF'
import json, sqlite3, sys

db, kind, path = sys.argv[1:4]
con = sqlite3.connect(db)
WIN = {"model_a": "a", "model_b": "b", "tie": "tie", "tie (bothbad)": "both_bad"}

def label(prompt, ta, ga, tb, gb, verdict, name, ann_kind):
    # the same label whichever side is stored first
    if (tb, gb) < (ta, ga):
        ta, ga, tb, gb = tb, gb, ta, ga
        verdict = {"a": "b", "b": "a"}.get(verdict, verdict)
    return (prompt, ta, ga, tb, gb, verdict, name, ann_kind)

want, names = [], set()
if kind == "mtbench":
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        i = 2 * r["turn"] - 1  # the judged answer
        a, b = r["conversation_a"], r["conversation_b"]
        if a[:i] != b[:i]:
            continue  # refused: not two answers to one prompt
        assert i == 1, "a later turn with the same history: not in these files"
        names.add(r["judge"])
        want.append(label(a[0]["content"], a[1]["content"], r["model_a"], b[1]["content"], r["model_b"],
                          WIN[r["winner"]], r["judge"], "judge" if r["judge"].startswith("gpt") else "human"))
else:
    for r in json.load(open(path, encoding="utf-8")):
        names.add(r["annotator"])
        want.append(label(r["instruction"], r["output_1"], r["generator_1"], r["output_2"], r["generator_2"],
                          "a" if r["preference"] == 1 else "b", r["annotator"], "judge"))

got = []
for row in con.execute(
        "SELECT p.kind, p.content, ca.text, ga.name, cb.text, gb.name, c.verdict, a.name, a.kind "
        "FROM comparisons c JOIN prompts p ON p.id = c.prompt_id JOIN annotators a ON a.id = c.annotator_id "
        "JOIN completions ca ON ca.id = c.completion_a JOIN generators ga ON ga.id = ca.generator_id "
        "JOIN completions cb ON cb.id = c.completion_b JOIN generators gb ON gb.id = cb.generator_id"):
    pk, pc = row[0], row[1]
    if row[7] not in names:
        continue
    if pk != "text":
        m = json.loads(pc)
        pc = m[0]["content"] if len(m) == 1 and m[0]["role"] == "user" else pc
    got.append(label(pc, *row[2:]))
want.sort()
got.sort()
print("ok" if got == want else "got  %r\nwant %r" % (got, want))
EOF
check() { python3 "$T/check.py" "$DB" "$@" 2>&1; }
# the first column of each row of SQL on the database, a line each
q() { python3 -c 'import sqlite3,sys; [print(r[0]) for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2])]' "$DB" "$1"; }

# ---- MT-Bench human judgments (the "human" split) ------------------------------------------------
dpo-db --db "$DB" import "$D/mt_bench_human_judgments.jsonl" >"$T/.out" 2>"$T/.err"
is "MT-Bench human split: a turn-2 judgment after different first answers fails the file" "$?" 1
like "MT-Bench human split: the line and why" "$(cat "$T/.err")" \
	"mt_bench_human_judgments.jsonl:2: the conversations before the judged answer differ (message 1): the judged answers follow different earlier answers, so they are not two answers to one prompt"
is "MT-Bench human split: nothing imported" "$(q 'SELECT count(*) FROM comparisons')" 0
ok "MT-Bench human split with --skip-bad" dpo-db --db "$DB" import --skip-bad "$T/rej_h.jsonl" \
	"$D/mt_bench_human_judgments.jsonl"
is "MT-Bench human split: summary (the turn-1 judgments; both turn-2 ones rejected)" "$(summary)" \
	"mt-bench (pairwise judgments) (detected), source mt_bench_human_judgments: 3 records, prompts 3 new / 0 duplicate, completions 6 new / 0 duplicate, comparisons 3 new / 0 duplicate, 2 rejected"
is "MT-Bench human split: prompts, answers, models, verdicts and judges as the file says" \
	"$(check mtbench "$D/mt_bench_human_judgments.jsonl")" ok
is "MT-Bench human split: the rejected lines and their reason" \
	"$(python3 -c 'import json,sys; [print(d["line"], d["reason"][:118]) for d in map(json.loads, open(sys.argv[1]))]' "$T/rej_h.jsonl")" \
	"2 the conversations before the judged answer differ (message 1): the judged answers follow different earlier answers, so
5 the conversations before the judged answer differ (message 1): the judged answers follow different earlier answers, so"

# ---- MT-Bench GPT-4 judgments (the "gpt4_pair" split) --------------------------------------------
ok "MT-Bench gpt4_pair split with --skip-bad" dpo-db --db "$DB" import --skip-bad "$T/rej_g.jsonl" \
	"$D/mt_bench_gpt4_pair.jsonl"
is "MT-Bench gpt4_pair split: summary (the same prompts and answers, new labels)" "$(summary)" \
	"mt-bench (pairwise judgments) (detected), source mt_bench_gpt4_pair: 3 records, prompts 0 new / 3 duplicate, completions 0 new / 6 duplicate, comparisons 3 new / 0 duplicate, 1 rejected"
is "MT-Bench gpt4_pair split: labels as the file says, gpt4_pair a judge" \
	"$(check mtbench "$D/mt_bench_gpt4_pair.jsonl")" ok
is "annotators: the human split's people are humans, gpt4_pair a judge" \
	"$(q "SELECT group_concat(name || '=' || kind, ' ') FROM (SELECT * FROM annotators ORDER BY name)")" \
	"author_0=human author_3=human expert_12=human gpt4_pair=judge"

# ---- AlpacaEval alpaca_eval_gpt4 annotations.json --------------------------------------------------
ok "AlpacaEval annotations.json (a pretty-printed JSON array)" dpo-db --db "$DB" import \
	"$D/alpaca_eval_gpt4_annotations.json"
is "AlpacaEval annotations.json: summary" "$(summary)" \
	"alpaca-eval (annotations) (detected), source alpaca_eval_gpt4_annotations: 3 records, prompts 3 new / 0 duplicate, completions 6 new / 0 duplicate, comparisons 3 new / 0 duplicate, 0 rejected"
is "AlpacaEval annotations.json: texts (escapes decoded), generators, verdicts, alpaca_eval_gpt4 a judge" \
	"$(check alpaca "$D/alpaca_eval_gpt4_annotations.json")" ok
is "AlpacaEval annotations.json: each record's line in its run's provenance" \
	"$(q "SELECT group_concat(line, ' ') FROM (SELECT v.line FROM provenance v JOIN import_files f ON f.run_id = v.run_id WHERE f.source = 'alpaca_eval_gpt4_annotations' AND v.kind = 'comparison' ORDER BY v.line)")" \
	"2 15 28"

done_testing
