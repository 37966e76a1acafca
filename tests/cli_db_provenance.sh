#!/bin/sh
# cli_db_provenance.sh: provenance and undo (issue #13): every import file is
# a run (file, size, SHA-256, format, options, counts, status), each record
# keeps its run, line and id; `dpo-db runs` lists runs; `dpo-db remove`
# takes back a run, a source or an annotator (and --dry-run changes no byte);
# `export --with-meta` carries the provenance; `--format trl` refuses a file
# whose prompt column would have two types.
. "$top_srcdir/tests/tap.sh"

command -v sqlite3 >/dev/null 2>&1 || skip_all "sqlite3 not installed"
have_py() { command -v python3 >/dev/null 2>&1; }
q() { sqlite3 "$1" "$2"; }

# The data of a store, independent of row ids: prompts by hash, completions
# by (prompt, text hash), comparisons as (winner, loser) by content, the
# annotators and generators -- what two stores with the same data share.
canon() {
	sqlite3 "$1" "
SELECT 'P', hex(hash), kind, content, source, split, n_completions, n_labeled_pairs FROM prompts ORDER BY hash;
SELECT 'C', hex(p.hash), hex(c.hash), c.text, g.kind, g.name FROM completions c JOIN prompts p ON p.id = c.prompt_id
	JOIN generators g ON g.id = c.generator_id ORDER BY 2, 3;
SELECT 'X', hex(p.hash), CASE x.verdict WHEN 'b' THEN hex(b.hash) ELSE hex(a.hash) END,
	CASE x.verdict WHEN 'b' THEN hex(a.hash) ELSE hex(b.hash) END, n.name, n.kind,
	CASE WHEN x.verdict IN ('a', 'b') THEN 'won' ELSE x.verdict END,
	CASE x.verdict WHEN 'b' THEN x.score_b ELSE x.score_a END, CASE x.verdict WHEN 'b' THEN x.score_a ELSE x.score_b END
	FROM comparisons x JOIN prompts p ON p.id = x.prompt_id JOIN completions a ON a.id = x.completion_a
	JOIN completions b ON b.id = x.completion_b JOIN annotators n ON n.id = x.annotator_id ORDER BY 2, 3, 4, 5;
SELECT 'A', kind, name FROM annotators ORDER BY name;
SELECT 'G', kind, name FROM generators ORDER BY kind, name;"
}

# Two imports that share prompts P1 and P2 (and completions C1, R2); each
# has a prompt of its own. A's records carry "id", B's "question_id".
cat >"$T/A.jsonl" <<'EOF'
{"id": "a1", "prompt": "P1", "chosen": "C1", "rejected": "R1"}
{"id": "a2", "prompt": "P2", "chosen": "C2", "rejected": "R2"}

{"id": "a3", "prompt": "PA", "chosen": "CA", "rejected": "RA"}
EOF
cat >"$T/B.jsonl" <<'EOF'
{"question_id": 7, "prompt": "P1", "chosen": "C1", "rejected": "X1"}
{"question_id": 8, "prompt": "P2", "chosen": "C2b", "rejected": "R2"}
{"question_id": 9, "prompt": "PB", "chosen": "CB", "rejected": "RB"}
EOF

DB=$T/ab.db
ok "import A then B" dpo-db --db "$DB" import --quiet "$T/A.jsonl" "$T/B.jsonl"
ok "B alone, elsewhere" dpo-db --db "$T/b.db" import --quiet --source B "$T/B.jsonl"
ok "A alone, elsewhere" dpo-db --db "$T/a.db" import --quiet "$T/A.jsonl"

# ---- runs: one per file ------------------------------------------------------
ok "dpo-db runs" dpo-db --db "$DB" runs
is "runs: a header and one line per file" "$(wc -l <"$T/.out" | tr -d ' ')" 3
is "runs: id, kind, status of each" "$(tail -n 2 "$T/.out" | awk '{ print $1, $2, $3 }' | tr '\n' ' ')" \
	"1 import ok 2 import ok "
like "runs: an import's summary names its file and counts" "$(sed -n 2p "$T/.out")" \
	"$T/A.jsonl (trl): 3 records, prompts 3 new, completions 6 new, comparisons 3 new, 0 rejected"
like "runs: the second's counts" "$(sed -n 3p "$T/.out")" \
	"$T/B.jsonl (trl): 3 records, prompts 1 new, completions 4 new, comparisons 3 new, 0 rejected"
is "import_files: path, size, format, source, split" \
	"$(q "$DB" "SELECT run_id, path, size, format, source, split FROM import_files ORDER BY run_id" | tr '\n' ' ')" \
	"1|$T/A.jsonl|$(wc -c <"$T/A.jsonl" | tr -d ' ')|trl|A|train 2|$T/B.jsonl|$(wc -c <"$T/B.jsonl" | tr -d ' ')|trl|B|train "
is "runs: the command line and the options" "$(q "$DB" "SELECT command || ' ' || params FROM runs WHERE id = 1")" \
	"dpo-db import --quiet $T/A.jsonl $T/B.jsonl {\"format\": \"auto\", \"split\": \"train\"}"
if have_py; then
	want=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$T/B.jsonl")
	is "import_files: SHA-256 of the file's bytes" "$(q "$DB" "SELECT sha256 FROM import_files WHERE run_id = 2")" "$want"
	dpo-db --db "$DB" runs --json >"$T/runs.json"
	is "runs --json: id, kind, status, file, size, sha256, source, counts" "$(python3 -c '
import json, sys
for r in json.load(open(sys.argv[1]))["runs"]:
	f = r["file"]
	print(r["id"], r["kind"], r["status"], f["path"] == sys.argv[2 + r["id"] - 1], f["size"], f["sha256"][:8],
	      f["format"], f["source"], r["summary"]["records"], r["summary"]["comparisons_new"], r["params"]["split"],
	      r["started_at"] <= r["ended_at"])' "$T/runs.json" "$T/A.jsonl" "$T/B.jsonl")" \
	"1 import ok True $(wc -c <"$T/A.jsonl" | tr -d ' ') $(q "$DB" "SELECT substr(sha256, 1, 8) FROM import_files WHERE run_id = 1") trl A 3 3 train True
2 import ok True $(wc -c <"$T/B.jsonl" | tr -d ' ') ${want%${want#????????}} trl B 3 3 train True"
else
	skip "SHA-256 and runs --json" "python3 not installed"
fi

S=$T/stdin.db
dpo-db --db "$S" import --quiet --source piped - <"$T/A.jsonl" >/dev/null 2>&1
is "standard input: path -, no size or SHA-256" \
	"$(q "$S" "SELECT path || ' ' || (size IS NULL) || ' ' || (sha256 IS NULL) || ' ' || source FROM import_files")" "- 1 1 piped"

# ---- provenance of each record ------------------------------------------------
is "comparisons: run, line and the file's own id" \
	"$(q "$DB" "SELECT c.run_id, v.line, v.record_id FROM comparisons c JOIN provenance v ON v.kind = 'comparison'
		AND v.row_id = c.id AND v.run_id = c.run_id ORDER BY c.id" | tr '\n' ' ')" \
	"1|1|a1 1|2|a2 1|4|a3 2|1|7 2|2|8 2|3|9 "
is "prompts: each run's records, added or found (created)" \
	"$(q "$DB" "SELECT p.content, v.run_id, v.line, v.created FROM provenance v JOIN prompts p ON p.id = v.row_id
		WHERE v.kind = 'prompt' ORDER BY p.content, v.run_id" | tr '\n' ' ')" \
	"P1|1|1|1 P1|2|1|0 P2|1|2|1 P2|2|2|0 PA|1|4|1 PB|2|3|1 "
is "completions: who added them, who found them" \
	"$(q "$DB" "SELECT c.text, group_concat(v.run_id || ':' || v.created, ',') FROM provenance v JOIN completions c
		ON c.id = v.row_id WHERE v.kind = 'completion' GROUP BY c.id ORDER BY c.text" | tr '\n' ' ')" \
	"C1|1:1,2:0 C2|1:1 C2b|2:1 CA|1:1 CB|2:1 R1|1:1 R2|1:1,2:0 RA|1:1 RB|2:1 X1|2:1 "

# ---- a failed import is a failed run, with no data ------------------------------
printf '{"prompt": "Q", "chosen": "same", "rejected": "same"}\n' >"$T/bad.jsonl"
before=$(canon "$DB")
fails "a bad file fails" dpo-db --db "$DB" import "$T/bad.jsonl"
is "a bad file: no data" "$(canon "$DB")" "$before"
is "a bad file: its run is recorded as failed" "$(q "$DB" "SELECT kind, status, ended_at IS NOT NULL FROM runs WHERE id = 3")" \
	"import|failed|1"
like "a bad file: runs shows the error" "$(dpo-db --db "$DB" runs | tail -n 1)" \
	"$T/bad.jsonl (auto): $T/bad.jsonl:1: chosen and rejected are identical"
is "a bad file: no provenance" "$(q "$DB" "SELECT count(*) FROM provenance WHERE run_id = 3")" 0

# ---- an interrupted import is an interrupted run, with no data -------------------------
awk 'BEGIN { for (i = 0; i < 400000; i++) printf "{\"prompt\": \"big %d\", \"chosen\": \"y\", \"rejected\": \"n\"}\n", i }' >"$T/big.jsonl"
I=$T/int.db
cp "$DB" "$I"
before=$(canon "$I")
dpo-db --db "$I" import --quiet "$T/big.jsonl" >/dev/null 2>"$T/int.err" &
pid=$!
n=0
while [ "$(q "$I" "SELECT count(*) FROM runs WHERE status = 'running'" 2>/dev/null)" != 1 ] && [ $n -lt 300 ]; do
	sleep 0.05
	n=$((n + 1))
done
kill -INT $pid
wait $pid
is "SIGINT: exit 130" "$?" 130
is "SIGINT: the run reads interrupted" "$(q "$I" "SELECT kind, status FROM runs ORDER BY id DESC LIMIT 1")" "import|interrupted"
is "SIGINT: no data" "$(canon "$I")" "$before"
rm -f "$T/big.jsonl"

# ---- runs of other programs, and one whose process is gone --------------------------------
R=$T/runs.db
cp "$DB" "$R"
sh -c 'echo $$ >"$1"' sh "$T/gone.pid"
q "$R" "INSERT INTO runs(kind, command, started_at, ended_at, status, summary) VALUES ('train', 'dpo-train', '2026-01-01T00:00:00Z', '2026-01-01T01:00:00Z', 'ok', '{\"steps\": 10}');
	INSERT INTO runs(kind, command, started_at, status, pid, host) VALUES ('judge', 'dpo-judge', '2026-01-01T02:00:00Z', 'running', $(cat "$T/gone.pid"), '$(uname -n)')"
ok "runs with a training and a judge run" dpo-db --db "$R" runs
is "runs: the training run and its summary" "$(grep ' train ' "$T/.out" | awk '{ print $2, $3, $6, $7 }')" 'train ok {"steps": 10}'
is "runs: a running judge run whose process is gone reads interrupted" "$(grep ' judge ' "$T/.out" | awk '{ print $2, $3, $5 }')" \
	"judge interrupted -"
ok "runs --kind train" dpo-db --db "$R" runs --kind train
is "runs --kind train: only it" "$(tail -n +2 "$T/.out" | awk '{ print $2 }' | tr '\n' ' ')" "train "
if have_py; then
	dpo-db --db "$R" runs --json >"$T/r.json"
	is "runs --json: kinds, statuses, files" "$(python3 -c '
import json, sys
for r in json.load(open(sys.argv[1]))["runs"]:
	print(r["kind"], r["status"], r["file"] is not None, r["summary"] if r["kind"] == "train" else "")' "$T/r.json" | tr '\n' ' ')" \
		"import ok True  import ok True  import failed True  train ok False {'steps': 10} judge interrupted False  "
else
	skip "runs --json" "python3 not installed"
fi

# ---- remove --dry-run changes nothing ----------------------------------------------
cp "$DB" "$T/ab-before.db"
ok "remove --run 1 --dry-run" dpo-db --db "$DB" remove --run 1 --dry-run
is "--dry-run: the counts" "$(cat "$T/.out")" \
	"would remove 3 comparisons, 4 completions, 1 prompt, 1 annotator, 1 generator (of 1 run; 2 prompts and 2 completions they added stay: still used elsewhere)"
ok "--dry-run: the file is byte for byte the same" cmp "$DB" "$T/ab-before.db"
ok "remove --dry-run --json" dpo-db --db "$DB" remove --run 1 --dry-run --json
is "--dry-run --json" "$(cat "$T/.out")" \
	'{"dry_run": true, "runs": 1, "comparisons": 3, "completions": 4, "prompts": 1, "annotators": 1, "generators": 1, "kept_prompts": 2, "kept_completions": 2}'
ok "--json: still the same bytes" cmp "$DB" "$T/ab-before.db"

# ---- remove the first of two imports that share prompts ------------------------------
ok "remove --run 1" dpo-db --db "$DB" remove --run 1
is "remove: the counts first" "$(cat "$T/.out")" \
	"removing 3 comparisons, 4 completions, 1 prompt, 1 annotator, 1 generator (of 1 run; 2 prompts and 2 completions they added stay: still used elsewhere)
removed"
is "remove --run 1: the store is the store of B alone" "$(canon "$DB")" "$(canon "$T/b.db")"
is "the shared prompts stay (with B's source)" "$(q "$DB" "SELECT group_concat(content || ':' || source, ' ') FROM
	(SELECT content, source FROM prompts ORDER BY content)")" "P1:B P2:B PB:B"
is "B's labels stay" "$(q "$DB" "SELECT count(*) FROM comparisons c JOIN annotators a ON a.id = c.annotator_id
	WHERE a.name = 'import:B'")" 3
ok "remove: check passes (counters, foreign keys)" dpo-db --db "$DB" check
is "the kept rows are B's now (as in a store of B alone: 3 prompts, 6 completions, 3 comparisons)" "$(q "$DB" "SELECT count(*) FROM provenance WHERE run_id = 2 AND created = 1")" 12
is "run 1's provenance is gone, its run stays" \
	"$(q "$DB" "SELECT (SELECT count(*) FROM provenance WHERE run_id = 1) || ' ' || (SELECT status FROM runs WHERE id = 1)")" \
	"0 ok"
ok "export after remove" dpo-db --db "$DB" export "$T/e1.jsonl"
ok "export of B alone" dpo-db --db "$T/b.db" export "$T/e2.jsonl"
ok "the exports are the same" cmp "$T/e1.jsonl" "$T/e2.jsonl"
dpo-db --db "$DB" export --with-meta - 2>/dev/null | grep '"prompt": "P1"' >"$T/e3.jsonl"
is "--with-meta without scores: nulls; run 2's label" "$(cat "$T/e3.jsonl")" \
	'{"prompt": "P1", "chosen": "C1", "rejected": "X1", "meta": {"source": "B", "score_chosen": null, "score_rejected": null, "votes": {"chosen": 1, "rejected": 0, "tie": 0, "both_bad": 0, "skip": 0}, "annotators": [{"name": "import:B", "kind": "import", "verdict": "chosen", "score_chosen": null, "score_rejected": null, "run": 2}], "runs": [2]}}'

# ---- --source: the other way round ------------------------------------------------------
cp "$T/ab-before.db" "$T/ab2.db"
ok "remove --source B" dpo-db --db "$T/ab2.db" remove --source B
is "remove --source B: the store is the store of A alone" "$(canon "$T/ab2.db")" "$(canon "$T/a.db")"
ok "remove --source: check passes" dpo-db --db "$T/ab2.db" check

# ---- --annotator: labels only ------------------------------------------------------------
cp "$T/ab-before.db" "$T/ab3.db"
ok "remove --annotator import:A" dpo-db --db "$T/ab3.db" remove --annotator import:A
is "--annotator: the counts" "$(head -n 1 "$T/.out")" \
	"removing 3 comparisons, 0 completions, 0 prompts, 1 annotator, 0 generators (of 0 runs; 0 prompts and 0 completions they added stay: still used elsewhere)"
is "--annotator: its labels are gone, prompts and completions stay" \
	"$(q "$T/ab3.db" "SELECT (SELECT count(*) FROM comparisons) || ' ' || (SELECT count(*) FROM prompts) || ' ' ||
		(SELECT count(*) FROM completions) || ' ' || (SELECT sum(n_labeled_pairs) FROM prompts)")" "3 4 10 3"
ok "--annotator: check passes" dpo-db --db "$T/ab3.db" check

# ---- usage and errors -----------------------------------------------------------------------
dpo-db --db "$DB" remove >/dev/null 2>"$T/.err"
is "remove with nothing named: usage error" "$?" 2
dpo-db --db "$DB" remove --run 1 --source B >/dev/null 2>"$T/.err"
is "remove with two things named: usage error" "$?" 2
dpo-db --db "$DB" remove --run 99 >/dev/null 2>"$T/.err"
is "remove --run of no run: exit 1" "$?" 1
like "remove --run of no run: message" "$(cat "$T/.err")" "no run with id 99"
dpo-db --db "$DB" remove --annotator nobody >/dev/null 2>"$T/.err"
is "remove --annotator of nobody: exit 1" "$?" 1
like "remove --annotator of nobody: message" "$(cat "$T/.err")" 'no annotator "nobody"'
dpo-db --db "$DB" remove --source nowhere >/dev/null 2>"$T/.err"
is "remove --source of no source: exit 1" "$?" 1
like "remove --source of no source: message" "$(cat "$T/.err")" 'no import of source "nowhere"'

# ---- export --with-meta --------------------------------------------------------------------
# The chosen side stored second (its completion was added later): the
# scores must still follow chosen and rejected.
M=$T/meta.db
printf '{"prompt": "Which?", "completions": ["the worse one"]}\n' >"$T/cand.jsonl"
printf '{"prompt": "Which?", "chosen": "the better one", "rejected": "the worse one", "score_chosen": 8.5, "score_rejected": 3.25}\n' >"$T/uf.jsonl"
ok "meta: candidates" dpo-db --db "$M" import --quiet "$T/cand.jsonl"
ok "meta: binarized scores" dpo-db --db "$M" import --quiet --format ultrafeedback "$T/uf.jsonl"
is "meta: the chosen completion is completion_b" "$(q "$M" "SELECT verdict, score_a, score_b FROM comparisons")" "b|3.25|8.5"
ok "export --with-meta" dpo-db --db "$M" export --with-meta "$T/m.jsonl"
is "--with-meta: source, scores, votes, annotators, runs" "$(cat "$T/m.jsonl")" \
	'{"prompt": "Which?", "chosen": "the better one", "rejected": "the worse one", "meta": {"source": "cand", "score_chosen": 8.5, "score_rejected": 3.25, "votes": {"chosen": 1, "rejected": 0, "tie": 0, "both_bad": 0, "skip": 0}, "annotators": [{"name": "import:uf", "kind": "import", "verdict": "chosen", "score_chosen": 8.5, "score_rejected": 3.25, "run": 2}], "runs": [2]}}'
ok "export without --with-meta" dpo-db --db "$M" export "$T/m0.jsonl"
is "without --with-meta: no meta" "$(cat "$T/m0.jsonl")" \
	'{"prompt": "Which?", "chosen": "the better one", "rejected": "the worse one"}'

# ---- --format trl keeps the prompt column one type ----------------------------------------
# A store of plain prompts and conversations: --format trl writes the whole
# file as messages (as trl-conversational), and says so; one of plain
# prompts only stays strings.
K=$T/kinds.db
ok "kinds: plain prompts" dpo-db --db "$K" import --quiet "$T/A.jsonl"
ok "trl export of plain prompts only" dpo-db --db "$K" export "$T/k0.jsonl"
is "plain prompts only: strings" "$(head -n 1 "$T/k0.jsonl")" '{"prompt": "P1", "chosen": "C1", "rejected": "R1"}'
printf '{"prompt": [{"role": "user", "content": "Hi?"}], "chosen": [{"role": "assistant", "content": "Hello."}], "rejected": [{"role": "assistant", "content": "Go."}]}\n' >"$T/conv.jsonl"
ok "kinds: a conversation" dpo-db --db "$K" import --quiet "$T/conv.jsonl"
ok "--format trl of both kinds" dpo-db --db "$K" export "$T/k1.jsonl"
like "--format trl of both kinds: a note" "$(cat "$T/.err")" \
	"every pair is written as messages, a plain prompt as one user message, as --format trl-conversational does"
ok "--format trl-conversational of both kinds" dpo-db --db "$K" export --format trl-conversational "$T/k2.jsonl"
ok "--format trl of both kinds is the trl-conversational file" cmp "$T/k1.jsonl" "$T/k2.jsonl"
is "a plain prompt as one user message" "$(grep -c '^{"prompt": \[{"role": "user", "content": "P1"}\], "chosen": \[{"role": "assistant", "content": "C1"}\], "rejected": \[{"role": "assistant", "content": "R1"}\]}$' "$T/k1.jsonl")" 1
if have_py; then
	is "--format trl of both kinds: every prompt, chosen and rejected is a list" "$(python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(len(rows), all(isinstance(r[k], list) for r in rows for k in ("prompt", "chosen", "rejected")))' "$T/k1.jsonl")" \
		"4 True"
else
	skip "trl layout" "python3 not installed"
fi

done_testing
