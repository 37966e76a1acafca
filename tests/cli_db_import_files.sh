#!/bin/sh
# cli_db_import_files.sh: `dpo-db import` of other tools' files: JSON arrays
# (streamed; LLaMA-Factory's dpo_en_demo shape, minified, .gz), --map
# (AlpacaEval outputs), --join (arena-hard / FastChat questions and model
# answers), several models' outputs merged into one candidates set with a
# text from two models credited to both, an empty answer left out, CSV/TSV;
# and the errors (truncated array, junk after it, a missing --map path, a
# join key with no question, CSV quoting).
. "$top_srcdir/tests/tap.sh"
D=$top_srcdir/tests/data/import/files
DB=$T/a.db

skip() { # name reason
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n - $1 # SKIP $2"
}
summary() { sed 's/^[^:]*: //' "$T/.out"; }
have_sqlite() { command -v sqlite3 >/dev/null 2>&1; }
have_python() { command -v python3 >/dev/null 2>&1; }
# The database's data: every table but the run records (runs, metrics,
# import_files, provenance_records: every import, a failed one too, is a run).
snapshot() {
	if have_sqlite; then
		for t in $(sqlite3 "$1" "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT IN
				('runs', 'metrics', 'import_files', 'provenance', 'provenance_records')
				ORDER BY name"); do
			sqlite3 "$1" ".dump $t"
		done
	else
		dpo-db --db "$1" stats --json | sed 's/"runs": {[^}]*}[^}]*}//'
	fi
}
q() { sqlite3 "$DB" "$1"; }

# ---- JSON arrays ---------------------------------------------------------------------
ok "a LLaMA-Factory dpo_en_demo-like JSON array imports" dpo-db --db "$DB" import "$D/dpo_en_demo_like.json"
is "dpo_en_demo-like: summary" "$(summary)" \
	"sharegpt (detected), source dpo_en_demo_like: 3 records, prompts 3 new / 0 duplicate, completions 6 new / 0 duplicate, comparisons 3 new / 0 duplicate, 0 rejected"
ok "the same array gzipped adds nothing" dpo-db --db "$DB" import "$D/dpo_en_demo_like.json.gz"
is "the .json.gz: all duplicates" "$(summary)" \
	"sharegpt (detected), source dpo_en_demo_like: 3 records, prompts 0 new / 3 duplicate, completions 0 new / 6 duplicate, comparisons 0 new / 3 duplicate, 0 rejected"
ok "a minified one-line array" dpo-db --db "$DB" import --json "$D/trl_oneline.json"
like "one-line array: five records, read as a JSON array" "$(cat "$T/.out")" '"records": 5,'
like "one-line array: the container" "$(cat "$T/.out")" '"container": "json array"'
# an array on standard input, detected by its first byte
dpo-db --db "$T/stdin.db" import - <"$D/dpo_en_demo_like.json" >"$T/.out" 2>"$T/.err"
is "an array on standard input" "$?" 0
like "an array on standard input: three records" "$(summary)" "source stdin: 3 records"
if have_sqlite && have_python; then
	# byte-exact: every prompt and completion as Python reads the file
	want=$(python3 - "$D/dpo_en_demo_like.json" <<'EOF'
import json, sys
role = {"human": "user", "gpt": "assistant", "system": "system"}
for r in json.load(open(sys.argv[1], encoding="utf-8")):
    msgs = [{"role": role[m["from"]], "content": m["value"]} for m in r["conversations"]]
    print(json.dumps([m["content"] for m in msgs], ensure_ascii=False))
    print(json.dumps([r["chosen"]["value"], r["rejected"]["value"]], ensure_ascii=False))
EOF
)
	got=$(q "SELECT id, content FROM prompts WHERE source = 'dpo_en_demo_like' ORDER BY id" | while IFS='|' read -r id c; do
		python3 -c 'import json,sys; print(json.dumps([m["content"] for m in json.loads(sys.argv[1])], ensure_ascii=False))' "$c"
		python3 -c 'import json,sys; print(json.dumps(sys.argv[1:], ensure_ascii=False))' \
			"$(q "SELECT text FROM completions WHERE prompt_id = $id ORDER BY id LIMIT 1")" \
			"$(q "SELECT text FROM completions WHERE prompt_id = $id ORDER BY id LIMIT 1 OFFSET 1")"
	done)
	is "dpo_en_demo-like: prompts and completions byte for byte" "$got" "$want"
	is "dpo_en_demo-like: the system turn kept" \
		"$(q "SELECT count(*) FROM prompts WHERE source = 'dpo_en_demo_like' AND content LIKE '%\"role\":\"system\"%'")" 1
else
	skip "dpo_en_demo-like: texts" "sqlite3 or python3 not installed"
	skip "dpo_en_demo-like: system turn" "sqlite3 or python3 not installed"
fi

# bad arrays: the file named with the line; nothing kept
before=$(snapshot "$DB")
fails "a truncated array fails" dpo-db --db "$DB" import "$D/truncated.json"
like "truncated array: the message" "$(cat "$T/.err")" \
	"truncated.json:58: the file ends inside the JSON array, after 2 complete elements (is it truncated?) (2 good records before it); nothing of this file was imported"
fails "junk after the array fails" dpo-db --db "$DB" import "$D/junk_after.json"
like "junk after the array: the message" "$(cat "$T/.err")" "junk_after.json:2: text after the end of the JSON array (']')"
fails "a bad element fails" dpo-db --db "$DB" import "$D/bad_record.json"
like "a bad element: its line and its number" "$(cat "$T/.err")" \
	"bad_record.json:3: record 2: field \"chosen\" must be a string or a list of messages (after 1 good record;"
is "bad arrays leave the database as it was" "$(snapshot "$DB")" "$before"
ok "a bad element with --skip-bad" dpo-db --db "$T/skip.db" import --skip-bad "$T/rej.jsonl" "$D/bad_record.json"
like "--skip-bad: one imported, one rejected" "$(summary)" "1 records, prompts 1 new / 0 duplicate, completions 2 new / 0 duplicate, comparisons 1 new / 0 duplicate, 1 rejected"
if have_python; then
	is "--skip-bad: the rejected element, as it was in the array" \
		"$(python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).readline()); print(r["line"], json.loads(r["record"])["prompt"])' "$T/rej.jsonl")" "3 a2"
else
	skip "--skip-bad: the rejected element" "python3 not installed"
fi

# ---- --map: AlpacaEval model outputs ----------------------------------------------------
M=prompt=instruction,completion=output,model=generator
ok "AlpacaEval outputs with --map" dpo-db --db "$DB" import --map "$M" "$D/alpaca_eval_outputs.json" \
	"$D/alpaca_eval_outputs_b.json"
is "AlpacaEval: two files, one candidates set" "$(cat "$T/.out")" \
	"$D/alpaca_eval_outputs.json: candidates (detected), source alpaca_eval_outputs: 3 records, prompts 3 new / 0 duplicate, completions 3 new / 0 duplicate, comparisons 0 new / 0 duplicate, 0 rejected
$D/alpaca_eval_outputs_b.json: candidates (detected), source alpaca_eval_outputs_b: 3 records, prompts 0 new / 3 duplicate, completions 2 new / 1 duplicate, comparisons 0 new / 0 duplicate, 0 rejected"
if have_sqlite && have_python; then
	want=$(python3 - "$D/alpaca_eval_outputs.json" "$D/alpaca_eval_outputs_b.json" <<'EOF'
import json, sys
credit = {}
for f in sys.argv[1:]:
    for r in json.load(open(f, encoding="utf-8")):
        credit.setdefault((r["instruction"], r["output"]), []).append(r["generator"])
for (p, o), g in sorted(credit.items()):
    print(json.dumps([p, o, sorted(g)], ensure_ascii=False))
EOF
)
	# sqlite3 separators that cannot occur in the texts
	got=$(sqlite3 -separator "$(printf '\037')" -newline "$(printf '\036')" "$DB" "SELECT p.content, c.text, (SELECT group_concat(name, ',') FROM (SELECT g.name FROM completion_generators x JOIN generators g ON g.id = x.generator_id WHERE x.completion_id = c.id ORDER BY g.name)) FROM completions c JOIN prompts p ON p.id = c.prompt_id WHERE p.source = 'alpaca_eval_outputs'" |
		python3 -c '
import json, sys
out = []
for r in sys.stdin.read().split("\x1e"):
    if r:
        p, o, g = r.split("\x1f")
        out.append(json.dumps([p, o, g.split(",")], ensure_ascii=False))
print("\n".join(sorted(out)))')
	is "AlpacaEval: texts byte for byte, each credited to its generators (an identical output to both)" "$got" "$want"
	is "AlpacaEval: completions.generator_id stays the first" \
		"$(q "SELECT g.name FROM completions c JOIN generators g ON g.id = c.generator_id WHERE c.text = 'Bonjour à tous !'")" "tiny-llama"
else
	skip "AlpacaEval: texts and generators" "sqlite3 or python3 not installed"
	skip "AlpacaEval: first generator" "sqlite3 or python3 not installed"
fi
before=$(snapshot "$DB")
fails "a --map path missing in a record" dpo-db --db "$DB" import --map prompt=question,completion=output "$D/alpaca_eval_outputs.json"
like "a missing path: names the path and line" "$(cat "$T/.err")" \
	"alpaca_eval_outputs.json:2: record 1: field path \"question\" not found: no field \"question\""
fails "a nested --map path missing" dpo-db --db "$DB" import --map prompt=instruction,completion=output.text "$D/alpaca_eval_outputs.json"
like "a nested missing path: says which step" "$(cat "$T/.err")" \
	"field path \"output.text\" not found: \"output\" is not an object with \"text\""
is "missing paths leave the database as it was" "$(snapshot "$DB")" "$before"
dpo-db --db "$DB" import --map bogus=x "$D/alpaca_eval_outputs.json" >"$T/.out" 2>"$T/.err"
is "--map with an unknown field: usage error" "$?" 2
like "--map with an unknown field: the message" "$(cat "$T/.err")" "--map: unknown field \"bogus\""
dpo-db --db "$DB" import --map 'prompt=a[x]' "$D/alpaca_eval_outputs.json" >"$T/.out" 2>"$T/.err"
is "--map with a bad path: usage error" "$?" 2
like "--map with a bad path: the message" "$(cat "$T/.err")" "field path \"a[x]\": expected a number after '['"

# ---- --join: arena-hard questions and model answers ----------------------------------------
J="--join $D/question.jsonl --on question_id"
ok "arena-hard answers of two models joined to their questions" dpo-db --db "$T/j.db" import $J \
	"$D/model-a.jsonl" "$D/model-b.jsonl"
is "arena-hard: summaries (one empty answer left out)" "$(cat "$T/.out")" \
	"$D/model-a.jsonl: candidates (detected), source model-a: 3 records, prompts 3 new / 0 duplicate, completions 3 new / 0 duplicate, comparisons 0 new / 0 duplicate, 0 rejected
$D/model-b.jsonl: candidates (detected), source model-b: 3 records, prompts 0 new / 3 duplicate, completions 1 new / 1 duplicate, comparisons 0 new / 0 duplicate, 0 rejected, 1 empty completion left out"
like "arena-hard: the empty answer is reported" "$(cat "$T/.err")" "model-b.jsonl: 1 empty completion left out"
if have_sqlite && have_python; then
	want=$(python3 - "$D/question.jsonl" "$D/model-a.jsonl" "$D/model-b.jsonl" <<'EOF'
import json, sys
qs = {}
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    qs[r["question_id"]] = r["turns"][0]["content"]
credit = {}
for f in sys.argv[2:]:
    for line in open(f, encoding="utf-8"):
        r = json.loads(line)
        t = r["choices"][0]["turns"][0]["content"]
        if t:
            credit.setdefault((qs[r["question_id"]], t), []).append(r["model_id"])
for (p, t), g in sorted(credit.items()):
    print(json.dumps([p, t, sorted(g)], ensure_ascii=False))
EOF
)
	got=$(sqlite3 -separator "$(printf '\037')" -newline "$(printf '\036')" "$T/j.db" "SELECT p.content, c.text, (SELECT group_concat(name, ',') FROM (SELECT g.name FROM completion_generators x JOIN generators g ON g.id = x.generator_id WHERE x.completion_id = c.id ORDER BY g.name)) FROM completions c JOIN prompts p ON p.id = c.prompt_id" |
		python3 -c '
import json, sys
out = []
for r in sys.stdin.read().split("\x1e"):
    if r:
        p, o, g = r.split("\x1f")
        out.append(json.dumps([p, o, g.split(",")], ensure_ascii=False))
print("\n".join(sorted(out)))')
	is "arena-hard: prompts from the questions, answers byte for byte, 42 credited to both models" "$got" "$want"
	is "arena-hard: three prompts, four completions, one credited twice" \
		"$(sqlite3 "$T/j.db" "SELECT (SELECT count(*) FROM prompts) || ' ' || (SELECT count(*) FROM completions) || ' ' || (SELECT count(*) FROM completion_generators)")" "3 4 5"
	is "arena-hard: n_completions kept right" \
		"$(sqlite3 "$T/j.db" "SELECT group_concat(n_completions, ' ') FROM (SELECT n_completions FROM prompts ORDER BY id)")" "2 1 1"
else
	skip "arena-hard: texts and generators" "sqlite3 or python3 not installed"
	skip "arena-hard: counts" "sqlite3 or python3 not installed"
	skip "arena-hard: n_completions" "sqlite3 or python3 not installed"
fi
ok "arena-hard: --skip-bad lists the empty answer" dpo-db --db "$T/j2.db" import --skip-bad "$T/rej2.jsonl" $J "$D/model-b.jsonl"
like "arena-hard: the rejects file names the empty completion and its model" "$(cat "$T/rej2.jsonl")" \
	"\"line\": 3, \"reason\": \"field \\\"completions[0]\\\" of model model-b is empty: not imported (the rest of the record was)\""
# FastChat MT-bench: numeric ids, turns as strings; the first turn
ok "MT-bench answers joined to their questions" dpo-db --db "$T/mt.db" import --join "$D/mt_question.jsonl" \
	--on question_id "$D/mt_answer.jsonl"
if have_sqlite; then
	is "MT-bench: the first turn and its answer" \
		"$(sqlite3 "$T/mt.db" "SELECT p.content || ' => ' || c.text || ' (' || g.name || ')' FROM completions c JOIN prompts p ON p.id = c.prompt_id JOIN generators g ON g.id = c.generator_id ORDER BY c.id")" \
		"Compose a travel blog post about Hawaii. => Aloha from Hawaii! (vicuna-7b)
What is 3 + 4? => 7 (vicuna-7b)"
else
	skip "MT-bench: texts" "sqlite3 not installed"
fi
ok "an explicit --map with join: paths" dpo-db --db "$T/mt2.db" import --join "$D/mt_question.jsonl" --on question_id \
	--map 'prompt=join:turns[1],completion=choices[0].turns[1],model=model_id' "$D/mt_answer.jsonl"
if have_sqlite; then
	is "join: paths: the second turns" \
		"$(sqlite3 "$T/mt2.db" "SELECT group_concat(p.content || '=' || c.text, ';') FROM completions c JOIN prompts p ON p.id = c.prompt_id")" \
		"Rewrite it starting every sentence with A.=A trip...;And times 2?=14"
else
	skip "join: paths" "sqlite3 not installed"
fi
before=$(snapshot "$T/j.db")
fails "an answer whose question is missing" dpo-db --db "$T/j.db" import $J "$D/orphan.jsonl"
like "a missing question: names the key and the line" "$(cat "$T/.err")" \
	"orphan.jsonl:2: question_id q9 is not in $D/question.jsonl"
is "a missing question leaves the database as it was" "$(snapshot "$T/j.db")" "$before"
ok "a missing question with --skip-bad" dpo-db --db "$T/j.db" import --skip-bad "$T/rej3.jsonl" $J "$D/orphan.jsonl"
like "--skip-bad: the orphan rejected, the other imported" "$(summary)" "1 records, prompts 0 new / 1 duplicate, completions 1 new / 0 duplicate, comparisons 0 new / 0 duplicate, 1 rejected"
dpo-db --db "$T/j.db" import --join "$D/question.jsonl" "$D/orphan.jsonl" >"$T/.out" 2>"$T/.err"
is "--join without --on: usage error" "$?" 2
printf '{"question_id": "q1", "turns": ["a"]}\n{"question_id": "q1", "turns": ["b"]}\n' >"$T/dupq.jsonl"
fails "a question file with a key twice" dpo-db --db "$T/j.db" import --join "$T/dupq.jsonl" --on question_id "$D/orphan.jsonl"
like "a key twice: names the line" "$(cat "$T/.err")" "dupq.jsonl:2: question_id q1 appears twice"

# ---- CSV and TSV ---------------------------------------------------------------------------
ok "CSV with quotes, commas, CRLF and newlines inside quotes" dpo-db --db "$T/c.db" import "$D/pairs.csv"
is "CSV: summary (source without .csv)" "$(summary)" \
	"trl (standard) (detected), source pairs: 2 records, prompts 2 new / 0 duplicate, completions 4 new / 0 duplicate, comparisons 2 new / 0 duplicate, 0 rejected"
if have_sqlite && have_python; then
	want=$(python3 - "$D/pairs.csv" <<'EOF'
import csv, json, sys
for r in csv.DictReader(open(sys.argv[1], newline="", encoding="utf-8")):
    print(json.dumps([r["prompt"], r["chosen"], r["rejected"]]))
EOF
)
	got=$(sqlite3 -separator "$(printf '\037')" -newline "$(printf '\036')" "$T/c.db" "SELECT p.content, a.text, b.text FROM comparisons x JOIN prompts p ON p.id = x.prompt_id JOIN completions a ON a.id = x.completion_a JOIN completions b ON b.id = x.completion_b ORDER BY x.id" |
		python3 -c '
import json, sys
for r in sys.stdin.read().split("\x1e"):
    if r:
        print(json.dumps(r.split("\x1f")))')
	is "CSV: texts byte for byte as Python's csv reads them" "$got" "$want"
else
	skip "CSV: texts" "sqlite3 or python3 not installed"
fi
ok "TSV with --map and numeric scores" dpo-db --db "$T/t.db" import --map \
	prompt=instruction,chosen=answer_good,rejected=answer_bad,score_chosen=score_good,score_rejected=score_bad "$D/pairs.tsv"
is "TSV: summary" "$(summary)" \
	"ultrafeedback (binarized) (detected), source pairs: 2 records, prompts 2 new / 0 duplicate, completions 4 new / 0 duplicate, comparisons 2 new / 0 duplicate, 0 rejected"
if have_sqlite; then
	is "TSV: texts, a quote inside a field, scores and verdicts" \
		"$(sqlite3 "$T/t.db" "SELECT group_concat(p.content || '|' || x.verdict || '|' || x.score_a || '|' || x.score_b, ';') FROM comparisons x JOIN prompts p ON p.id = x.prompt_id")" \
		'Translate "cat"|a|9.0|2.0;Count to three|tie|8.5|8.5'
else
	skip "TSV: texts" "sqlite3 not installed"
fi
cp "$D/pairs.tsv" "$T/pairs.txt"
ok "--format tsv on a file named otherwise" dpo-db --db "$T/t2.db" import --format tsv --map \
	prompt=instruction,chosen=answer_good,rejected=answer_bad "$T/pairs.txt"
fails "CSV: a quoted field left open" dpo-db --db "$T/c.db" import "$D/bad_quote.csv"
like "CSV: an open quote names the line and column" "$(cat "$T/.err")" \
	"bad_quote.csv:4: column 2: the quoted field is not closed at the end of the file (the row starts on line 3)"
printf 'prompt,chosen,rejected\na,b"c,d\n' >"$T/q.csv"
fails "CSV: a stray quote" dpo-db --db "$T/c.db" import "$T/q.csv"
like "CSV: a stray quote names the line and column" "$(cat "$T/.err")" "q.csv:2: column 2: a quote inside a field that does not start with one"
fails "CSV: a row with too many columns" dpo-db --db "$T/c.db" import "$D/bad_columns.csv"
like "CSV: the column count" "$(cat "$T/.err")" "bad_columns.csv:3: 4 columns, but the header has 3"
printf 'prompt,chosen,prompt\na,b,c\n' >"$T/dup.csv"
fails "CSV: a header naming a column twice" dpo-db --db "$T/c.db" import "$T/dup.csv"
like "CSV: the duplicate column" "$(cat "$T/.err")" "dup.csv:1: column 3: the header names \"prompt\" twice"

# ---- the real LLaMA-Factory sample, as a JSON array -----------------------------------------
if have_shared && have_python; then
	python3 -c 'import json,sys; print(json.dumps([json.loads(l) for l in open(sys.argv[1]) if l.strip()], indent=2))' \
		"$DPO_SHARED/data/llama-factory-demo/v1_dpo_demo.jsonl" >"$T/v1_dpo_demo.json"
	ok "the real v1_dpo_demo.jsonl as a JSON array" dpo-db --db "$T/r1.db" import "$T/v1_dpo_demo.json"
	ok "the real v1_dpo_demo.jsonl as it is" dpo-db --db "$T/r2.db" import "$DPO_SHARED/data/llama-factory-demo/v1_dpo_demo.jsonl"
	if have_sqlite; then
		is "array and JSON Lines store the same texts" \
			"$(sqlite3 "$T/r1.db" "SELECT content FROM prompts ORDER BY id; SELECT text FROM completions ORDER BY id")" \
			"$(sqlite3 "$T/r2.db" "SELECT content FROM prompts ORDER BY id; SELECT text FROM completions ORDER BY id")"
	else
		skip "array vs JSON Lines" "sqlite3 not installed"
	fi
else
	skip "the real LLaMA-Factory sample as an array" "shared data or python3 missing"
	skip "the real LLaMA-Factory sample" "shared data or python3 missing"
	skip "array vs JSON Lines" "shared data or python3 missing"
fi

done_testing
