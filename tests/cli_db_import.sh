#!/bin/sh
# cli_db_import.sh: `dpo-db import` end to end: every format, .gz and stdin,
# re-import, bad records (abort and --skip-bad), invalid UTF-8, wrong types,
# empty files, a 10 MB line, usage errors, the real samples in
# $DPO_SHARED/data, two importers at once, and export -> import -> export.
. "$top_srcdir/tests/tap.sh"
D=$top_srcdir/tests/data/import
DB=$T/a.db

skip() { # name reason
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n - $1 # SKIP $2"
}

# The summary of the last import with its "FILE: " prefix removed.
summary() { sed 's/^[^:]*: //' "$T/.out"; }

# A fingerprint of the database's data: the SQL dump of every table but the
# run records (runs, metrics, import_files, provenance_records: every import, a
# failed one too, is a run) when sqlite3 is there, else the statistics
# without the runs'.
snapshot() {
	if command -v sqlite3 >/dev/null 2>&1; then
		for t in $(sqlite3 "$1" "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT IN
				('runs', 'metrics', 'import_files', 'provenance', 'provenance_records')
				ORDER BY name"); do
			sqlite3 "$1" ".dump $t"
		done
	else
		dpo-db --db "$1" stats --json | sed 's/"runs": {[^}]*}[^}]*}//'
	fi
}

# KIND STATUS of the database's last run.
last_run() { dpo-db --db "$1" runs | tail -n 1 | awk '{ print $2, $3 }'; }

have_sqlite() { command -v sqlite3 >/dev/null 2>&1; }

# ---- every format, detected ------------------------------------------------
imp() { # file expected-summary
	ok "import $1" dpo-db --db "$DB" import "$D/$1"
	is "summary of $1" "$(summary)" "$2"
}
imp trl.jsonl "trl (standard) (detected), source trl: 3 records, prompts 3 new / 0 duplicate, completions 6 new / 0 duplicate, comparisons 3 new / 0 duplicate, 0 rejected"
imp trl_conversational.jsonl "trl (conversational) (detected), source trl_conversational: 2 records, prompts 2 new / 0 duplicate, completions 4 new / 0 duplicate, comparisons 2 new / 0 duplicate, 0 rejected"
imp trl_implicit.jsonl "trl (implicit prompt) (detected), source trl_implicit: 2 records, prompts 2 new / 0 duplicate, completions 4 new / 0 duplicate, comparisons 2 new / 0 duplicate, 0 rejected"
imp hh.jsonl "hh (detected), source hh: 3 records, prompts 3 new / 0 duplicate, completions 6 new / 0 duplicate, comparisons 3 new / 0 duplicate, 0 rejected"
imp ultrafeedback_binarized.jsonl "ultrafeedback (binarized) (detected), source ultrafeedback_binarized: 3 records, prompts 3 new / 0 duplicate, completions 6 new / 0 duplicate, comparisons 3 new / 0 duplicate, 0 rejected"
imp ultrafeedback_raw.jsonl "ultrafeedback (raw) (detected), source ultrafeedback_raw: 2 records, prompts 2 new / 0 duplicate, completions 5 new / 0 duplicate, comparisons 4 new / 0 duplicate, 0 rejected, ratings 7 new / 0 duplicate"
imp sharegpt.jsonl "sharegpt (detected), source sharegpt: 2 records, prompts 2 new / 0 duplicate, completions 4 new / 0 duplicate, comparisons 2 new / 0 duplicate, 0 rejected"
imp llama_factory_v1.jsonl "sharegpt (llama-factory v1) (detected), source llama_factory_v1: 1 records, prompts 1 new / 0 duplicate, completions 2 new / 0 duplicate, comparisons 1 new / 0 duplicate, 0 rejected"
imp prompts.jsonl "prompts (detected), source prompts: 3 records, prompts 3 new / 0 duplicate, completions 0 new / 0 duplicate, comparisons 0 new / 0 duplicate, 0 rejected"
imp candidates.jsonl "candidates (detected), source candidates: 2 records, prompts 2 new / 0 duplicate, completions 5 new / 0 duplicate, comparisons 0 new / 0 duplicate, 0 rejected"

# ---- re-importing adds nothing -------------------------------------------------
before=$(snapshot "$DB")
ok "re-import every file" dpo-db --db "$DB" import "$D/trl.jsonl" "$D/trl_conversational.jsonl" \
	"$D/trl_implicit.jsonl" "$D/hh.jsonl" "$D/ultrafeedback_binarized.jsonl" "$D/ultrafeedback_raw.jsonl" \
	"$D/sharegpt.jsonl" "$D/llama_factory_v1.jsonl" "$D/prompts.jsonl" "$D/candidates.jsonl"
is "re-import: ten summaries" "$(wc -l <"$T/.out" | tr -d ' ')" 10
is "re-import: nothing new" "$(grep -c ' [1-9][0-9]* new' "$T/.out")" 0
is "re-import: the duplicates counted" "$(sed -n 1p "$T/.out" | sed 's/^[^:]*: //')" \
	"trl (standard) (detected), source trl: 3 records, prompts 0 new / 3 duplicate, completions 0 new / 6 duplicate, comparisons 0 new / 3 duplicate, 0 rejected"
is "re-import leaves the database as it was" "$(snapshot "$DB")" "$before"

# ---- what went in -----------------------------------------------------------------
if have_sqlite; then
	is "verdicts: ties from equal UltraFeedback scores, b from a lower mean rating" \
		"$(sqlite3 "$DB" "SELECT verdict || '=' || count(*) FROM comparisons GROUP BY verdict ORDER BY verdict" | tr '\n' ' ')" \
		"a=17 b=1 tie=2 "
	is "annotators are import:<source>" \
		"$(sqlite3 "$DB" "SELECT count(*) FROM annotators WHERE kind = 'import' AND name LIKE 'import:%'")" 8
	is "UltraFeedback models become generators" \
		"$(sqlite3 "$DB" "SELECT group_concat(name, ',') FROM (SELECT name FROM generators WHERE kind = 'model' ORDER BY name)")" \
		"model-a,model-b,model-c,vllm-model"
	is "UltraFeedback scores kept (in metadata and at the top level), by the side the file called chosen" \
		"$(sqlite3 "$DB" "SELECT group_concat(v, ' ') FROM (SELECT c.verdict || ':' || (CASE c.source_chosen WHEN 'a' THEN c.score_a ELSE c.score_b END) || '/' || (CASE c.source_chosen WHEN 'a' THEN c.score_b ELSE c.score_a END) v FROM comparisons c JOIN annotators n ON n.id = c.annotator_id WHERE n.name = 'import:ultrafeedback_binarized' ORDER BY c.id)")" \
		"a:8.5/3.0 tie:7.0/7.0 a:9.0/4.0"
	is "a tie from equal scores keeps which side the file called chosen" \
		"$(sqlite3 "$DB" "SELECT x.text FROM comparisons c JOIN completions x ON x.id = (CASE c.source_chosen WHEN 'a' THEN c.completion_a ELSE c.completion_b END) JOIN annotators n ON n.id = c.annotator_id WHERE n.name = 'import:ultrafeedback_binarized' AND c.verdict = 'tie'")" \
		"You are doing great."
	is "HH prompts are kept as text through the last Assistant:" \
		"$(sqlite3 "$DB" "SELECT count(*) FROM prompts WHERE source = 'hh' AND kind = 'text' AND content LIKE char(10,10) || 'Human: %' AND content LIKE '%' || char(10,10) || 'Assistant:'")" 3
	is "ShareGPT roles converted (system, user, assistant)" \
		"$(sqlite3 "$DB" "SELECT content FROM prompts WHERE source = 'sharegpt' AND content LIKE '%terse%'" | grep -o '"role": *"[a-z]*"' | sed 's/.*"\([a-z]*\)"$/\1/' | tr '\n' ' ')" \
		"system user assistant user "
else
	skip "database contents" "sqlite3 not installed"
fi
# the two ties above (one from equal binarized scores, one from equal raw
# ratings) make no pair under any policy, and stats says so (#12)
ok "stats of the imports" dpo-db --db "$DB" stats
like "stats: the tied pairs each policy drops at export" "$(cat "$T/.out")" \
	"tied pairs dropped at export: majority 2, humans-over-judges 2, unanimous 2, consistent-judge 2"

# ---- options ------------------------------------------------------------------------
ok "--source and --split" dpo-db --db "$T/o.db" import --source mine --split test "$D/trl.jsonl"
is "--source named in the summary" "$(summary)" \
	"trl (standard) (detected), source mine: 3 records, prompts 3 new / 0 duplicate, completions 6 new / 0 duplicate, comparisons 3 new / 0 duplicate, 0 rejected"
if have_sqlite; then
	is "--split and --source stored" "$(sqlite3 "$T/o.db" "SELECT DISTINCT source || '/' || split FROM prompts")" "mine/test"
	is "annotator import:mine" "$(sqlite3 "$T/o.db" "SELECT name FROM annotators")" "import:mine"
fi
ok "--format=trl --json" dpo-db --db "$T/o2.db" import --format=trl --json "$D/trl.jsonl"
like "--json summary" "$(cat "$T/.out")" '"format": "trl", "variant": "trl (standard)", "source": "trl", "lines": 3, "records": 3, "prompts_new": 3'
is "--json is one line" "$(wc -l <"$T/.out" | tr -d ' ')" 1
fails "--format hh on a TRL file" dpo-db --db "$T/o2.db" import --format hh "$D/trl.jsonl"
like "--format hh on a TRL file: the reason" "$(cat "$T/.err")" "trl.jsonl:1: field \"chosen\" must start with \"\\n\\nHuman:\""

# ---- .gz and standard input -------------------------------------------------------------
if command -v gzip >/dev/null 2>&1; then
	gzip -c "$D/hh.jsonl" >"$T/talk.jsonl.gz"
	ok "import .gz" dpo-db --db "$T/gz.db" import "$T/talk.jsonl.gz"
	is ".gz summary, source without extensions" "$(summary)" \
		"hh (detected), source talk: 3 records, prompts 3 new / 0 duplicate, completions 6 new / 0 duplicate, comparisons 3 new / 0 duplicate, 0 rejected"
	# a truncated .gz names the file and what was read; junk after the
	# gzip stream is an error; several members are one stream (as gzip -d)
	gen_hh() { awk 'BEGIN { for (i = 0; i < 3000; i++)
		printf "{\"chosen\": \"\\n\\nHuman: q%d\\n\\nAssistant: yes %d\", \"rejected\": \"\\n\\nHuman: q%d\\n\\nAssistant: no\"}\n", i, i * 7919, i }'; }
	gen_hh | gzip -c >"$T/long.jsonl.gz"
	ok "a long .gz imports" dpo-db --db "$T/gz2.db" import "$T/long.jsonl.gz"
	like "a long .gz: 3000 records" "$(summary)" "3000 records, prompts 3000 new"
	size=$(wc -c <"$T/long.jsonl.gz" | tr -d ' ')
	head -c $((size / 2)) "$T/long.jsonl.gz" >"$T/trunc.jsonl.gz"
	before=$(snapshot "$T/gz.db")
	dpo-db --db "$T/gz.db" import "$T/trunc.jsonl.gz" >"$T/.out" 2>"$T/.err"
	is "a truncated .gz: exit 1" "$?" 1
	cp "$T/.err" "$T/trunc.err"
	like "a truncated .gz: names the file" "$(cat "$T/.err")" "dpo-db: $T/trunc.jsonl.gz: the gzip data ends early (truncated after $((size / 2)) compressed bytes), after "
	ok "a truncated .gz: says how many lines and records were read" \
		grep -Eq ', after [1-9][0-9]* lines \([1-9][0-9]* good records\); nothing of this file was imported$' "$T/trunc.err"
	is "a truncated .gz: database unchanged" "$(snapshot "$T/gz.db")" "$before"
	{ cat "$T/talk.jsonl.gz"; printf 'junk\n'; } >"$T/junk.jsonl.gz"
	dpo-db --db "$T/gz.db" import "$T/junk.jsonl.gz" >"$T/.out" 2>"$T/.err"
	is "junk after the gzip stream: exit 1" "$?" 1
	like "junk after the gzip stream: message" "$(cat "$T/.err")" \
		"junk.jsonl.gz: data after the end of the gzip stream (at compressed byte $(($(wc -c <"$T/talk.jsonl.gz") + 1)))"
	is "junk after the gzip stream: database unchanged" "$(snapshot "$T/gz.db")" "$before"
	{ head -n 1 "$D/hh.jsonl" | gzip -c; tail -n +2 "$D/hh.jsonl" | gzip -c; } >"$T/members.jsonl.gz"
	ok "a .gz of two members imports" dpo-db --db "$T/gz3.db" import "$T/members.jsonl.gz"
	like "a .gz of two members: every record" "$(summary)" "3 records, prompts 3 new"
else
	skip "import .gz" "gzip not installed"
fi
dpo-db --db "$T/in.db" import - <"$D/sharegpt.jsonl" >"$T/.out" 2>"$T/.err"
is "import - (standard input)" "$?" 0
is "standard input: source stdin" "$(summary)" \
	"sharegpt (detected), source stdin: 2 records, prompts 2 new / 0 duplicate, completions 4 new / 0 duplicate, comparisons 2 new / 0 duplicate, 0 rejected"

# ---- a bad record aborts and leaves the database unchanged ---------------------------------
before=$(snapshot "$DB")
expect_fail() { # name file message
	dpo-db --db "$DB" import "$D/$2" >"$T/.out" 2>"$T/.err"
	is "$1: exit 1" "$?" 1
	is "$1: message" "$(cat "$T/.err")" "dpo-db: $D/$2$3"
	is "$1: database unchanged" "$(snapshot "$DB")" "$before"
	is "$1: a failed import run is recorded" "$(last_run "$DB")" "import failed"
}
# The first bad record aborts the file (one transaction per file); the
# message says how many good records came before it and suggests --skip-bad.
hint() { # good-records-before
	[ "$1" = 1 ] && set -- "1 good record" || set -- "$1 good records"
	echo " (after $1; nothing of this file was imported: --skip-bad FILE imports the good records and writes the bad ones to FILE)"
}
expect_fail "bad record on line 3" bad_line3.jsonl ":3: chosen and rejected are identical$(hint 2)"
expect_fail "invalid UTF-8" bad_utf8.jsonl ":2: invalid UTF-8 at byte 16$(hint 1)"
expect_fail "wrong type" wrong_type.jsonl ":2: field \"chosen\" must be a string or a list of messages$(hint 1)"
expect_fail "empty file" empty.jsonl ": no records"
expect_fail "blank lines only" blank.jsonl ": no records"
expect_fail "HH prompts that differ" hh_bad.jsonl ":2: the prompts of \"chosen\" and \"rejected\" differ (from byte 11 on)$(hint 1)"
printf '{"prompt": "Q", "chosen": "A", "rejected": "B", "chosen": "C"}\n' >"$T/dupkey.jsonl"
dpo-db --db "$DB" import "$T/dupkey.jsonl" >"$T/.out" 2>"$T/.err"
is "a duplicate key: exit 1" "$?" 1
like "a duplicate key: named" "$(cat "$T/.err")" "dupkey.jsonl:1: duplicate key \"chosen\" in one object"
is "a duplicate key: database unchanged" "$(snapshot "$DB")" "$before"
printf '{"prompt": "Q", "chosen": "A", "rejected": "B"}\n{"chosen": "\\n\\nHuman: x\\n\\nAssistant: y", "rejected": "\\n\\nHuman: x\\n\\nAssistant: z"}\n' >"$T/mixed.jsonl"
dpo-db --db "$DB" import "$T/mixed.jsonl" >"$T/.out" 2>"$T/.err"
is "a record of another format: exit 1" "$?" 1
like "a record of another format: message" "$(cat "$T/.err")" \
	"mixed.jsonl:2: field \"prompt\" is missing (records without one need \"chosen\" and \"rejected\" as whole conversations, or --format hh for HH-RLHF transcripts) (this record looks like hh, but the file's first record was trl)"
fails "a missing file" dpo-db --db "$DB" import "$T/nonexistent.jsonl"
like "a missing file: message" "$(cat "$T/.err")" "nonexistent.jsonl: No such file or directory"
dpo-db --db "$DB" import "$D/trl.jsonl" "$D/bad_line3.jsonl" >"$T/.out" 2>"$T/.err"
is "a bad second file: exit 1" "$?" 1
is "a bad second file: the first one was imported (all duplicates here)" "$(summary)" \
	"trl (standard) (detected), source trl: 3 records, prompts 0 new / 3 duplicate, completions 0 new / 6 duplicate, comparisons 0 new / 3 duplicate, 0 rejected"
is "database still unchanged" "$(snapshot "$DB")" "$before"

# ---- detection looks past the first record; KTO is binary feedback -----------------------------------
printf '{"prompt": "only a prompt"}\n{"prompt": "Q1", "chosen": "A", "rejected": "B"}\n\n{"prompt": "Q2", "chosen": "A", "rejected": "B"}\n' >"$T/pfirst.jsonl"
dpo-db --db "$T/d.db" import "$T/pfirst.jsonl" >"$T/.out" 2>"$T/.err"
is "a prompt-only first line before pairs: exit 1 (not a prompts file)" "$?" 1
like "a prompt-only first line before pairs: the reason" "$(cat "$T/.err")" \
	"pfirst.jsonl:1: field \"chosen\" is missing (this record looks like prompts, but the file's first records are mostly trl)"
ok "a prompt-only first line before pairs: --skip-bad imports the pairs" \
	dpo-db --db "$T/d.db" import --skip-bad "$T/d-rej.jsonl" "$T/pfirst.jsonl"
is "a prompt-only first line before pairs: summary" "$(summary)" \
	"trl (standard) (detected), source pfirst: 2 records, prompts 2 new / 0 duplicate, completions 4 new / 0 duplicate, comparisons 2 new / 0 duplicate, 1 rejected"
{ awk 'BEGIN { for (i = 0; i < 1500; i++) printf "{\"prompt\": \"far %d\"}\n", i }'
  printf '{"prompt": "Q", "chosen": "A", "rejected": "B"}\n'; } >"$T/pfar.jsonl"
dpo-db --db "$T/d.db" import "$T/pfar.jsonl" >"$T/.out" 2>"$T/.err"
is "a pair far after prompt-only lines: exit 1" "$?" 1
like "a pair far after prompt-only lines: the reason" "$(cat "$T/.err")" \
	"pfar.jsonl:1501: this record holds preferences (it looks like trl), but the file's first record was prompts: use --format"
ok "prompts and candidates still import" dpo-db --db "$T/d.db" import "$D/prompts.jsonl" "$D/candidates.jsonl"
printf '{"prompt": "Q", "completion": "A", "label": true}\n{"prompt": "Q", "completion": "B", "label": false}\n' >"$T/kto.jsonl"
ok "a KTO file with --format prompts: its prompts" dpo-db --db "$T/d.db" import --format prompts "$T/kto.jsonl"
like "a KTO file with --format prompts: one prompt" "$(summary)" "2 records, prompts 1 new / 1 duplicate"
dpo-db --db "$T/d.db" import "$T/kto.jsonl" >"$T/.out" 2>"$T/.err"
is "a KTO file: exit 0 (binary feedback, see cli_db_labels.sh)" "$?" 0
like "a KTO file: detected, two feedback labels" "$(cat "$T/.out")" \
	"kto.jsonl: kto (trl) (detected), source kto: 2 records, prompts 0 new / 2 duplicate, completions 2 new / 0 duplicate, comparisons 0 new / 0 duplicate, 0 rejected, feedback 2 new / 0 duplicate"
printf '{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], "kto_tag": true}\n' >"$T/kto_lf.jsonl"
dpo-db --db "$T/d.db" import "$T/kto_lf.jsonl" >"$T/.out" 2>"$T/.err"
is "a LLaMA-Factory KTO file: exit 0 (not imported as prompts)" "$?" 0
like "a LLaMA-Factory KTO file: detected, one feedback label (its [user: Q] is the prompt Q, A the same completion)" "$(cat "$T/.out")" \
	"kto_lf.jsonl: kto (llama-factory) (detected), source kto_lf: 1 records, prompts 0 new / 1 duplicate, completions 0 new / 1 duplicate, comparisons 0 new / 0 duplicate, 0 rejected, feedback 1 new / 0 duplicate"

# ---- --skip-bad ----------------------------------------------------------------------------------
ok "--skip-bad imports the rest" dpo-db --db "$T/s.db" import --skip-bad "$T/rej.jsonl" "$D/bad_line3.jsonl" "$D/hh_bad.jsonl"
is "--skip-bad: summary (1)" "$(sed -n 1p "$T/.out" | sed 's/^[^:]*: //')" \
	"trl (standard) (detected), source bad_line3: 3 records, prompts 3 new / 0 duplicate, completions 6 new / 0 duplicate, comparisons 3 new / 0 duplicate, 1 rejected"
is "--skip-bad: summary (2)" "$(sed -n 2p "$T/.out" | sed 's/^[^:]*: //')" \
	"hh (detected), source hh_bad: 2 records, prompts 2 new / 0 duplicate, completions 4 new / 0 duplicate, comparisons 2 new / 0 duplicate, 3 rejected"
like "--skip-bad: says where the rejects went" "$(cat "$T/.err")" "4 bad records written to $T/rej.jsonl"
is "--skip-bad: four rejects" "$(wc -l <"$T/rej.jsonl" | tr -d ' ')" 4
is "--skip-bad: the first reject" "$(sed -n 1p "$T/rej.jsonl")" \
	"{\"file\": \"$D/bad_line3.jsonl\", \"line\": 3, \"reason\": \"chosen and rejected are identical\", \"record\": \"{\\\"prompt\\\": \\\"P3\\\", \\\"chosen\\\": \\\"A\\\", \\\"rejected\\\": \\\"A\\\"}\"}"
like "--skip-bad: differing HH prompts" "$(sed -n 2p "$T/rej.jsonl")" '"line": 2, "reason": "the prompts of \"chosen\" and \"rejected\" differ (from byte 11 on)"'
like "--skip-bad: empty HH response" "$(sed -n 3p "$T/rej.jsonl")" '"line": 3, "reason": "the final response of \"chosen\" is empty"'
like "--skip-bad: no Assistant turn" "$(sed -n 4p "$T/rej.jsonl")" '"line": 4, "reason": "field \"chosen\" has no \"\\n\\nAssistant:\" turn"'
ok "--skip-bad with invalid UTF-8" dpo-db --db "$T/s.db" import --skip-bad "$T/rej2.jsonl" "$D/bad_utf8.jsonl"
like "--skip-bad: invalid bytes replaced by U+FFFD in the rejects file" "$(cat "$T/rej2.jsonl")" \
	"\"line\": 2, \"reason\": \"invalid UTF-8 at byte 16\", \"record\": \"{\\\"prompt\\\": \\\"P2 $(printf '\357\277\275\357\277\275')\\\""
if command -v python3 >/dev/null 2>&1; then
	ok "the rejects files are valid JSON Lines" python3 -c '
import json, sys
for p in sys.argv[1:]:
    for line in open(p, encoding="utf-8"):
        d = json.loads(line)
        assert set(d) == {"file", "line", "reason", "record"}, d
' "$T/rej.jsonl" "$T/rej2.jsonl"
fi
fails "--skip-bad does not hide an empty file" dpo-db --db "$T/s.db" import --skip-bad "$T/rej3.jsonl" "$D/empty.jsonl"
printf '{"prompt": "Q1", "chosen": "A", "rejected": "A"}\n\n{"prompt": "Q2", "chosen": 5, "rejected": "B"}\n' >"$T/allbad.jsonl"
before=$(snapshot "$T/s.db")
dpo-db --db "$T/s.db" import --skip-bad "$T/rej4.jsonl" "$T/allbad.jsonl" >"$T/.out" 2>"$T/.err"
is "--skip-bad, every record bad: exit 1" "$?" 1
is "--skip-bad, every record bad: message" "$(cat "$T/.err")" \
	"dpo-db: $T/allbad.jsonl: no good records (all 2 written to the rejects file); nothing imported"
is "--skip-bad, every record bad: both in the rejects file" "$(wc -l <"$T/rej4.jsonl" | tr -d ' ')" 2
is "--skip-bad, every record bad: database unchanged" "$(snapshot "$T/s.db")" "$before"

# ---- a 10 MB line ------------------------------------------------------------------------------------
big=$(head -c 10485760 /dev/zero | tr '\0' x)
printf '{"prompt": "Q big", "chosen": "%s", "rejected": "short"}\n' "$big" >"$T/big.jsonl"
printf '{"prompt": "Q big", "chosen": "%s, "rejected": "short"}\n' "$big" >"$T/bigbad.jsonl"
unset big
ok "a 10 MB line imports" dpo-db --db "$T/big.db" import "$T/big.jsonl"
like "a 10 MB line: one record" "$(summary)" "1 records, prompts 1 new"
dpo-db --db "$T/big.db" import "$T/bigbad.jsonl" >"$T/.out" 2>"$T/.err"
is "a broken 10 MB line: exit 1" "$?" 1
like "a broken 10 MB line: message" "$(cat "$T/.err")" "bigbad.jsonl:1: invalid JSON near byte"
rm -f "$T/big.jsonl" "$T/bigbad.jsonl"

# ---- usage errors -------------------------------------------------------------------------------
dpo-db --db "$T/u.db" import >/dev/null 2>&1
is "no FILE: exit 2" "$?" 2
dpo-db --db "$T/u.db" import --format nope "$D/trl.jsonl" >/dev/null 2>"$T/.err"
is "unknown format: exit 2" "$?" 2
like "unknown format: message" "$(cat "$T/.err")" 'unknown format "nope"'
dpo-db --db "$T/u.db" import --bogus "$D/trl.jsonl" >/dev/null 2>&1
is "unknown option: exit 2" "$?" 2
ok "import --help" dpo-db import --help
like "import --help lists the formats" "$(cat "$T/.out")" "ultrafeedback, sharegpt, prompts"
like "import --help: its own options" "$(cat "$T/.out")" "--skip-bad REJECTS"
like "import --help: exit status 130" "$(cat "$T/.out")" "130 interrupted"
dpo-db --db "$T/u.db" import --source "" "$D/trl.jsonl" >/dev/null 2>"$T/.err"
is "empty --source: exit 2" "$?" 2
like "empty --source: the wording" "$(cat "$T/.err")" 'dpo-db import: --source: expected a name, got ""'
# --db after the command; [dpo-db import] in the config file, overridden on the command line
printf '[dpo-db import]\nsource = fromconfig\nsplit = test\nquiet = yes\n' >"$T/config"
ok "config: import with --db after the command" env DPO_CONFIG="$T/config" dpo-db import "$D/trl.jsonl" --db "$T/cf.db"
like "config: source = fromconfig" "$(summary)" "source fromconfig: 3 records"
ok "config: --source on the command line wins" env DPO_CONFIG="$T/config" dpo-db import -s mine "$D/hh.jsonl" --db "$T/cf.db"
like "config: the command line's source" "$(summary)" "source mine: 3 records"
if have_sqlite; then
	is "config: split = test, and --db after the command was the database used" \
		"$(sqlite3 "$T/cf.db" "SELECT DISTINCT source || '/' || split FROM prompts ORDER BY 1")" "fromconfig/test
mine/test"
fi

# ---- two importers at once ------------------------------------------------------------------------
gen() { # prefix n
	awk -v p="$1" -v n="$2" 'BEGIN { for (i = 0; i < n; i++)
		printf "{\"prompt\": \"%s prompt %d\", \"chosen\": \"good %d\", \"rejected\": \"bad %d\"}\n", p, i, i, i }'
}
gen one 3000 >"$T/one.jsonl"
gen two 3000 >"$T/two.jsonl"
dpo-db --db "$T/c.db" init >/dev/null 2>&1
dpo-db --db "$T/c.db" import "$T/one.jsonl" >"$T/c1.out" 2>"$T/c1.err" &
p1=$!
dpo-db --db "$T/c.db" import "$T/two.jsonl" >"$T/c2.out" 2>"$T/c2.err" &
p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
is "concurrent import 1 succeeds" "$r1" 0
is "concurrent import 2 succeeds" "$r2" 0
[ "$r1" = 0 ] || sed 's/^/#   /' "$T/c1.err"
[ "$r2" = 0 ] || sed 's/^/#   /' "$T/c2.err"
ok "after both: everything is there" dpo-db --db "$T/c.db" import "$T/one.jsonl" "$T/two.jsonl"
is "after both: nothing lost" "$(sed 's/^[^:]*: //' "$T/.out" | tr '\n' '|')" \
"trl (standard) (detected), source one: 3000 records, prompts 0 new / 3000 duplicate, completions 0 new / 6000 duplicate, comparisons 0 new / 3000 duplicate, 0 rejected|trl (standard) (detected), source two: 3000 records, prompts 0 new / 3000 duplicate, completions 0 new / 6000 duplicate, comparisons 0 new / 3000 duplicate, 0 rejected|"

# ---- export -> import -> export --------------------------------------------------------------------
if dpo-db export --help >/dev/null 2>&1; then
	for pair in trl:trl.jsonl trl-conversational:trl_conversational.jsonl hh:hh.jsonl; do
		f=${pair%%:*} src=${pair#*:}
		rm -f "$T/r1.db"* "$T/r2.db"*
		dpo-db --db "$T/r1.db" import "$D/$src" >/dev/null 2>&1 &&
			dpo-db --db "$T/r1.db" export "$T/e1.jsonl" --format "$f" >/dev/null 2>"$T/.err" &&
			dpo-db --db "$T/r2.db" import "$T/e1.jsonl" >/dev/null 2>>"$T/.err" &&
			dpo-db --db "$T/r2.db" export "$T/e2.jsonl" --format "$f" >/dev/null 2>>"$T/.err"
		is "export $f -> import -> export: exit 0" "$?" 0
		ok "export $f -> import -> export: byte-identical" cmp "$T/e1.jsonl" "$T/e2.jsonl"
		is "export $f: every pair exported" "$(wc -l <"$T/e1.jsonl" | tr -d ' ')" "$(wc -l <"$D/$src" | tr -d ' ')"
	done
	if command -v python3 >/dev/null 2>&1; then
		ok "export hh gives the original HH transcripts" python3 -c '
import json, sys
a = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
b = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
key = lambda r: (r["chosen"], r["rejected"])
assert sorted(map(key, a)) == sorted(map(key, b)), (a, b)
' "$T/e1.jsonl" "$D/hh.jsonl"
	fi
else
	skip "export round trips" "dpo-db export is not available"
fi

# ---- opposite labels from one source are conflicts, not duplicates ----------------------------------
# Line 3 labels the pair of line 1 the other way: a conflict named by its
# line, and the first verdict stays; so does a later import of the same
# source that disagrees again (#12).
printf '%s\n' '{"prompt": "Pick one.", "chosen": "X", "rejected": "Y"}' \
	'{"prompt": "Pick two.", "chosen": "Z", "rejected": "W"}' \
	'{"prompt": "Pick one.", "chosen": "Y", "rejected": "X"}' >"$T/conf.jsonl"
ok "conflicting labels: import" dpo-db --db "$T/conf.db" import "$T/conf.jsonl"
is "conflicting labels: counted apart from duplicates, with the line" "$(summary)" \
	"trl (standard) (detected), source conf: 3 records, prompts 2 new / 1 duplicate, completions 4 new / 2 duplicate, comparisons 2 new / 0 duplicate, 0 rejected, 1 conflicting label (line 3: the source gave the pair another verdict before; the first is kept)"
printf '%s\n' '{"prompt": "Pick two.", "chosen": "W", "rejected": "Z"}' \
	'{"prompt": "Pick one.", "chosen": "X", "rejected": "Y"}' >"$T/conf2.jsonl"
ok "conflicting labels: another file of the source" dpo-db --db "$T/conf.db" import --source conf --json "$T/conf2.jsonl"
like "conflicting labels across imports: --json" "$(cat "$T/.out")" \
	'"comparisons_new": 0, "comparisons_duplicate": 1, "comparisons_conflicting": 1, "conflict_lines": [1], "rejected": 0'
if have_sqlite; then
	is "conflicting labels: the first verdicts kept" \
		"$(sqlite3 "$T/conf.db" "SELECT group_concat(a.text || '>' || b.text, ' ') FROM (SELECT CASE verdict WHEN 'a' THEN completion_a ELSE completion_b END w, CASE verdict WHEN 'a' THEN completion_b ELSE completion_a END l FROM comparisons ORDER BY id) c JOIN completions a ON a.id = c.w JOIN completions b ON b.id = c.l")" \
		"X>Y Z>W"
fi

# ---- "Hi" and [user: "Hi"] are one prompt ---------------------------------------------------------
# One canonical form for fingerprints: a plain prompt and a conversation of
# one user message with the same text are the same prompt, whichever came
# first, so no split can put one copy in train and the other in test (#12).
printf '%s\n' '{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}' >"$T/hi-text.jsonl"
printf '%s\n' '{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hey."}], "rejected": [{"role": "assistant", "content": "No."}]}' \
	'{"prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hey."}], "rejected": [{"role": "assistant", "content": "No."}]}' >"$T/hi-chat.jsonl"
for order in "hi-text hi-chat" "hi-chat hi-text"; do
	rm -f "$T/hi.db"*
	set -- $order
	ok "one canonical prompt form ($1 first): import" dpo-db --db "$T/hi.db" import "$T/$1.jsonl" "$T/$2.jsonl"
	like "one canonical prompt form ($1 first): the second file's \"Hi\" is a duplicate" "$(sed -n 2p "$T/.out")" \
		"prompts $( [ "$1" = hi-text ] && echo '1 new / 1 duplicate' || echo '0 new / 1 duplicate')"
	ok "one canonical prompt form ($1 first): stats" dpo-db --db "$T/hi.db" stats --json
	like "one canonical prompt form ($1 first): 2 prompts (the system message makes another)" "$(cat "$T/.out")" '"prompts": 2'
done
ok "one canonical prompt form: split" dpo-db --db "$T/hi.db" split --test-fraction 0.5 --seed 3
n_hi() { dpo-db --db "$T/hi.db" export --split "$1" --format trl-conversational - 2>/dev/null |
	grep -c '"prompt": \[{"role": "user", "content": "Hi"}\]'; }
is "one canonical prompt form: both labels of \"Hi\" in one split (train test)" \
	"$(n_hi train) $(n_hi test)" "$( [ "$(n_hi train)" = 2 ] && echo '2 0' || echo '0 2')"

# ---- the example data shipped in share/ -------------------------------------------------------------
ok "share/examples import" dpo-db --db "$T/ex.db" import "$top_srcdir/share/examples/preferences.jsonl" \
	"$top_srcdir/share/examples/prompts.jsonl" "$top_srcdir/share/examples/candidates.jsonl"
is "share/examples: counts" "$(sed 's/^[^:]*: //' "$T/.out" | tr '\n' '|')" \
"trl (standard) (detected), source preferences: 12 records, prompts 12 new / 0 duplicate, completions 24 new / 0 duplicate, comparisons 12 new / 0 duplicate, 0 rejected|\
prompts (detected), source prompts: 8 records, prompts 8 new / 0 duplicate, completions 0 new / 0 duplicate, comparisons 0 new / 0 duplicate, 0 rejected|\
candidates (detected), source candidates: 6 records, prompts 6 new / 0 duplicate, completions 18 new / 0 duplicate, comparisons 0 new / 0 duplicate, 0 rejected|"

# ---- the real samples in $DPO_SHARED/data --------------------------------------------------------------
if have_shared; then
	S=$DPO_SHARED/data
	hh=$S/hh-rlhf/harmless-base/test-first200.jsonl.gz
	uf=$S/ultrafeedback-binarized-sample/eval_clean.jsonl
	lf=$S/llama-factory-demo/v1_dpo_demo.jsonl
	dpo-db --db "$T/real.db" import "$hh" >"$T/.out" 2>"$T/.err"
	is "HH-RLHF sample without --skip-bad: exit 1" "$?" 1
	is "HH-RLHF sample: the empty response on line 87" "$(cat "$T/.err")" \
		"dpo-db: $hh:87: the final response of \"chosen\" is empty$(hint 86)"
	ok "real samples with --skip-bad" dpo-db --db "$T/real.db" import --skip-bad "$T/real-rej.jsonl" "$hh" "$uf" "$lf"
	is "HH-RLHF sample: counts" "$(sed -n 1p "$T/.out" | sed 's/^[^:]*: //')" \
		"hh (detected), source test-first200: 199 records, prompts 199 new / 0 duplicate, completions 398 new / 0 duplicate, comparisons 199 new / 0 duplicate, 1 rejected"
	is "UltraFeedback sample: counts" "$(sed -n 2p "$T/.out" | sed 's/^[^:]*: //')" \
		"ultrafeedback (binarized) (detected), source eval_clean: 199 records, prompts 199 new / 0 duplicate, completions 398 new / 0 duplicate, comparisons 199 new / 0 duplicate, 1 rejected"
	is "LLaMA-Factory sample: counts" "$(sed -n 3p "$T/.out" | sed 's/^[^:]*: //')" \
		"sharegpt (llama-factory v1) (detected), source v1_dpo_demo: 10 records, prompts 10 new / 0 duplicate, completions 20 new / 0 duplicate, comparisons 10 new / 0 duplicate, 0 rejected"
	like "UltraFeedback sample: line 44 has chosen == rejected" "$(sed -n 2p "$T/real-rej.jsonl")" \
		'"line": 44, "reason": "chosen and rejected are identical"'
	if have_sqlite; then
		is "UltraFeedback sample: 24 ties from equal scores" \
			"$(sqlite3 "$T/real.db" "SELECT count(*) FROM comparisons c JOIN annotators a ON a.id = c.annotator_id WHERE a.name = 'import:eval_clean' AND verdict = 'tie'")" 24
	fi
	# UltraFeedback's scores are kept with the comparisons, and stats says
	# how many tied pairs each policy's export leaves out; both counts are
	# computed here from the file (#12).
	if command -v python3 >/dev/null 2>&1; then
		rm -f "$T/ufs.db"*
		dpo-db --db "$T/ufs.db" import --skip-bad "$T/ufs-rej.jsonl" "$uf" >/dev/null 2>&1
		want=$(python3 -c '
import json, sys
scored = ties = 0
for line in open(sys.argv[1], encoding="utf-8"):
    d = json.loads(line)
    m = d.get("metadata") or {}
    sc, sr = d.get("score_chosen", m.get("score_chosen")), d.get("score_rejected", m.get("score_rejected"))
    if sc is None or d["chosen"] == d["rejected"]:
        continue  # no scores, or a bad record (chosen == rejected)
    scored += 1
    ties += sc == sr
print(scored, ties)' "$uf")
		scored=${want% *} ties=${want#* }
		echo "# UltraFeedback sample: $scored scored records, $ties ties"
		if have_sqlite; then
			is "UltraFeedback sample: every score stored" \
				"$(sqlite3 "$T/ufs.db" "SELECT count(*) FROM comparisons WHERE score_a IS NOT NULL AND score_b IS NOT NULL")" "$scored"
			is "UltraFeedback sample: ties keep the side the file called chosen" \
				"$(sqlite3 "$T/ufs.db" "SELECT count(*) FROM comparisons WHERE verdict = 'tie' AND source_chosen IS NOT NULL AND score_a = score_b")" "$ties"
		else
			skip "UltraFeedback sample: scores stored" "no sqlite3"
		fi
		ok "UltraFeedback sample: stats" dpo-db --db "$T/ufs.db" stats
		is "UltraFeedback sample: stats counts the ties each policy drops" \
			"$(grep '^tied pairs dropped at export:' "$T/.out")" \
			"tied pairs dropped at export: majority $ties, humans-over-judges $ties, unanimous $ties, consistent-judge $ties"
		ok "UltraFeedback sample: stats --json" dpo-db --db "$T/ufs.db" stats --json
		like "UltraFeedback sample: stats --json counts them too" "$(cat "$T/.out")" \
			"\"tied_pairs_dropped\": {\"majority\": $ties, \"humans-over-judges\": $ties, \"unanimous\": $ties, \"consistent-judge\": $ties}"
	else
		skip "UltraFeedback sample: scores and ties" "no python3"
	fi
	# Lossless HH: the stored prompt + completion is the transcript, byte for
	# byte, and where the two final responses begin differently the triple is
	# the one TRL's extract_prompt gives (the longest common prefix, backed
	# up by one when it ends in a space, so the space stays with the
	# completion). The reference is computed here from the file itself.
	if command -v python3 >/dev/null 2>&1; then
		rm -f "$T/hhx.db"*
		dpo-db --db "$T/hhx.db" import --skip-bad "$T/hhx-rej.jsonl" "$hh" >/dev/null 2>&1 &&
			dpo-db --db "$T/hhx.db" export --format trl "$T/hhx.jsonl" >/dev/null 2>&1
		is "HH-RLHF sample: export --format trl" "$?" 0
		ok "HH-RLHF sample: prompt + chosen/rejected are the transcripts, and extract_prompt's split" python3 -c '
import gzip, json, sys
def extract_prompt(ex):  # TRL trl/data_utils.py, for strings
    for idx in range(min(len(ex["chosen"]), len(ex["rejected"]))):
        if ex["chosen"][idx] != ex["rejected"][idx]:
            if ex["chosen"][idx - 1] == " ":
                idx -= 1
            break
    return (ex["chosen"][:idx], ex["chosen"][idx:], ex["rejected"][idx:])
A = "\n\nAssistant:"
ref = {}
for line in gzip.open(sys.argv[1], "rt", encoding="utf-8"):
    d = json.loads(line)
    c, r = d["chosen"], d["rejected"]
    pc, pr = c.rfind(A) + len(A), r.rfind(A) + len(A)
    if c[:pc] != r[:pr] or not c[pc:].strip(" ") or not r[pr:].strip(" ") or c == r:
        continue  # a bad record (rejected by --skip-bad)
    rc, rr = c[pc:], r[pr:]
    differ = rc[rc[:1] == " ":][:1] != rr[rr[:1] == " ":][:1]
    ref[(c.encode(), r.encode())] = extract_prompt(d) if differ else None
got = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
assert len(got) == len(ref) == 199, (len(got), len(ref))
same = 0
for t in got:
    p, c, r = t["prompt"], t["chosen"], t["rejected"]
    key = ((p + c).encode(), (p + r).encode())
    assert key in ref, ("prompt + completion is not a transcript of the file", p[-60:], c[:40], r[:40])
    want = ref.pop(key)
    if want is not None:
        assert (p, c, r) == want, ("differs from extract_prompt", p[-40:], want[0][-40:])
        same += 1
assert not ref
assert same >= 150, same
print(same)
' "$hh" "$T/hhx.jsonl"
		echo "# HH-RLHF sample: $(cat "$T/.out") of 199 triples compared with extract_prompt, all equal"
	else
		skip "HH-RLHF sample: lossless export" "python3 or dpo-db export missing"
	fi
	# UltraFeedback and LLaMA-Factory: every stored record equals its line of
	# the file, byte for byte (prompt, chosen, rejected, and the scores; a
	# tie keeps the side the file called chosen), read straight from the
	# database against a reference computed here from the file (#12).
	if command -v python3 >/dev/null 2>&1 && python3 -c 'import sqlite3' 2>/dev/null; then
		ok "UltraFeedback and LLaMA-Factory samples: every record stored byte for byte" python3 -c '
import json, sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
def stored(source):
    q = """SELECT p.kind, p.content, x.text, y.text, c.verdict, c.source_chosen, c.score_a, c.score_b
           FROM comparisons c JOIN annotators a ON a.id = c.annotator_id JOIN prompts p ON p.id = c.prompt_id
           JOIN completions x ON x.id = c.completion_a JOIN completions y ON y.id = c.completion_b
           WHERE a.name = ?"""
    out = []
    for kind, content, ta, tb, verdict, side, sa, sb in db.execute(q, ("import:" + source,)):
        first = verdict if verdict in ("a", "b") else side
        assert first in ("a", "b"), (verdict, side)
        ch, rj, sch, srj = (ta, tb, sa, sb) if first == "a" else (tb, ta, sb, sa)
        prompt = content if kind == "text" else json.loads(content)
        out.append((json.dumps(prompt), ch, rj, verdict == "tie", sch, srj))
    return sorted(out)
want = []
for line in open(sys.argv[2], encoding="utf-8"):
    d = json.loads(line)
    if d["chosen"] == d["rejected"]:
        continue  # rejected by --skip-bad: chosen and rejected are identical
    m = d.get("metadata") or {}
    sc, sr = d.get("score_chosen", m.get("score_chosen")), d.get("score_rejected", m.get("score_rejected"))
    want.append((json.dumps(d["prompt"]), d["chosen"], d["rejected"], sc == sr, sc, sr))
got = stored("eval_clean")
assert len(got) == len(want) == 199, (len(got), len(want))
assert got == sorted(want), next((g, w) for g, w in zip(got, sorted(want)) if g != w)
def msgs(lst):
    return [{"role": m["role"], "content": "".join(c["value"] for c in m["content"])} for m in lst]
want = []
for line in open(sys.argv[3], encoding="utf-8"):
    d = json.loads(line)
    c, r = msgs(d["chosen_messages"]), msgs(d["rejected_messages"])
    assert c[:-1] == r[:-1] and c[-1]["role"] == r[-1]["role"] == "assistant"
    want.append((json.dumps(c[:-1]), c[-1]["content"], r[-1]["content"], False, None, None))
got = stored("v1_dpo_demo")
assert len(got) == len(want) == 10, (len(got), len(want))
assert got == sorted(want), next((g, w) for g, w in zip(got, sorted(want)) if g != w)
' "$T/real.db" "$uf" "$lf"
	else
		skip "UltraFeedback and LLaMA-Factory samples: byte comparison" "no python3 with sqlite3"
	fi
	ok "real samples again: all duplicates" dpo-db --db "$T/real.db" import --skip-bad "$T/real-rej.jsonl" "$hh" "$uf" "$lf"
	is "real samples again: nothing new" "$(grep -c ' [1-9][0-9]* new' "$T/.out")" 0
else
	skip "real samples" "no shared data in $DPO_SHARED"
fi

done_testing
