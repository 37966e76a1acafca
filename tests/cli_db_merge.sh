#!/bin/sh
# cli_db_merge.sh: dpo-db merge (issue #14): an annotator's offline copy
# comes back with its labels (annotator, time, shown order, note), runs and
# metrics; matched by fingerprints, so merging twice adds nothing; a pair
# whose completions have other ids (and so the other order) there keeps
# its meaning; a conflict keeps the later label and is reported; gold marks
# come with their pair (turned with it), and a gold answer that differs
# stops the merge; the import runs' provenance comes, so that remove --run
# of an import made in the copy works here; --dry-run and every mistake
# change nothing.
. "$top_srcdir/tests/tap.sh"
command -v sqlite3 >/dev/null 2>&1 || skip_all "no sqlite3 to build the annotators' copies"
sum() { cksum <"$1"; }
q() { sqlite3 "$1" "$2"; }

# The team's store: three prompts. Alice's copy was made from other files,
# so her completions of "Q1?" came in the other order (other ids).
printf '%s\n' '{"prompt": "Q1?", "chosen": "x1", "rejected": "y1"}' \
	'{"prompt": "Q2?", "chosen": "x2", "rejected": "y2"}' \
	'{"prompt": "Q3?", "chosen": "x3", "rejected": "y3"}' >"$T/team.jsonl"
printf '%s\n' '{"prompt": "Q1?", "completions": ["y1", "x1"]}' >"$T/alice-q1.jsonl"
printf '%s\n' '{"prompt": "Q2?", "chosen": "x2", "rejected": "y2"}' \
	'{"prompt": "Q4?", "chosen": "x4", "rejected": "y4"}' >"$T/alice.jsonl"
ok "the team's store" dpo-db --db "$T/team.db" import --source team "$T/team.jsonl"
ok "alice's copy" dpo-db --db "$T/alice.db" import --source team "$T/alice-q1.jsonl" "$T/alice.jsonl"

# Alice labels Q1 and Q2 by hand (human rows: annotator, time, shown order,
# note); Q1 "x1 better", shown x1 first; Q2 "y2 better" at 10:00. The team
# store has alice's Q2 label too, "x2 better", at 09:00 (the earlier one).
human() { # DB PROMPT WINNER LOSER SHOWN-FIRST-TEXT NOTE TIME
	q "$1" "INSERT OR IGNORE INTO annotators(kind, name, created_at) VALUES ('human', 'alice', '$7');
	INSERT INTO comparisons(prompt_id, completion_a, completion_b, annotator_id, verdict, shown_first, rationale,
		duration_ms, created_at)
	SELECT p.id, min(w.id, l.id), max(w.id, l.id), (SELECT id FROM annotators WHERE name = 'alice'),
		CASE WHEN w.id < l.id THEN 'a' ELSE 'b' END,
		CASE WHEN (SELECT id FROM completions WHERE text = '$5') = min(w.id, l.id) THEN 'a' ELSE 'b' END,
		'$6', 1234, '$7'
	FROM prompts p JOIN completions w ON w.prompt_id = p.id AND w.text = '$3'
		JOIN completions l ON l.prompt_id = p.id AND l.text = '$4' WHERE p.content = '$2';
	UPDATE prompts SET n_labeled_pairs = 1 WHERE content = '$2';"
}
human "$T/alice.db" Q1? x1 y1 x1 "clear win" 2026-01-02T10:00:00Z
human "$T/alice.db" Q2? y2 x2 x2 "changed my mind" 2026-01-02T10:00:00Z
human "$T/team.db" Q2? x2 y2 y2 "" 2026-01-02T09:00:00Z
q "$T/alice.db" "INSERT INTO runs(kind, command, started_at, ended_at, status, pid, host)
	VALUES ('annotate', 'dpo-annotate --annotator alice', '2026-01-02T09:59:00Z', '2026-01-02T10:01:00Z', 'ok', 4242, 'laptop');
	INSERT INTO metrics(run_id, step, name, value) VALUES (last_insert_rowid(), -1, 'labels', 2)"
ok "alice's copy is sound" dpo-db --db "$T/alice.db" check
alice_sum=$(sum "$T/alice.db")

# ---- --dry-run changes nothing and says what would come in
cp "$T/team.db" "$T/team0.db"
ok "merge --dry-run" dpo-db --db "$T/team.db" merge --dry-run "$T/alice.db"
is "merge --dry-run: the counts" "$(cat "$T/.out")" \
	"$T/alice.db: (dry run, nothing changed) prompts 1 new / 2 duplicate, completions 2 new / 4 duplicate, labels 2 new / 1 duplicate, 1 conflicting (1 replaced by the later label), annotators 0 new, runs 3 new, metrics 1 new, gold items 0 new"
ok "merge --dry-run: the store is byte-identical" cmp "$T/team.db" "$T/team0.db"

# ---- the merge
ok "merge" dpo-db --db "$T/team.db" merge "$T/alice.db"
# (3 runs: alice's two imports, each a run, and her annotation session)
is "merge: the counts" "$(cat "$T/.out")" \
	"$T/alice.db: prompts 1 new / 2 duplicate, completions 2 new / 4 duplicate, labels 2 new / 1 duplicate, 1 conflicting (1 replaced by the later label), annotators 0 new, runs 3 new, metrics 1 new, gold items 0 new"
like "the conflict is reported" "$(cat "$T/.err")" \
	"conflict: alice labelled a pair of prompt 2 ("
like "with both verdicts and the later kept" "$(cat "$T/.err")" \
	"(2026-01-02T09:00:00Z) and "
like "kept there" "$(cat "$T/.err")" "kept the later (there)"
ok "the other store is not changed" test "$(sum "$T/alice.db")" = "$alice_sum"
ok "the merged store is sound" dpo-db --db "$T/team.db" check
winner() { # PROMPT: the text alice preferred, then what was shown first, the note and time
	q "$T/team.db" "SELECT w.text || '|' || s.text || '|' || coalesce(c.rationale, '') || '|' || c.created_at || '|' || c.duration_ms
	FROM comparisons c JOIN annotators a ON a.id = c.annotator_id AND a.name = 'alice'
	JOIN prompts p ON p.id = c.prompt_id AND p.content = '$1'
	JOIN completions w ON w.id = CASE c.verdict WHEN 'a' THEN c.completion_a ELSE c.completion_b END
	JOIN completions s ON s.id = CASE c.shown_first WHEN 'a' THEN c.completion_a ELSE c.completion_b END"
}
is "Q1 (the other order there): alice's label keeps its meaning, shown order, note, time" "$(winner Q1?)" \
	"x1|x1|clear win|2026-01-02T10:00:00Z|1234"
is "Q2: the later label is kept" "$(winner Q2?)" "y2|x2|changed my mind|2026-01-02T10:00:00Z|1234"
is "Q4 came in" "$(q "$T/team.db" "SELECT count(*) FROM prompts WHERE content = 'Q4?'")" 1
is "one label per annotator and pair" \
	"$(q "$T/team.db" "SELECT count(*) FROM comparisons c JOIN annotators a ON a.id = c.annotator_id WHERE a.name = 'alice'")" 2
is "the run and its metric came in" \
	"$(q "$T/team.db" "SELECT r.command || '|' || m.name || '=' || m.value FROM runs r JOIN metrics m ON m.run_id = r.id WHERE r.kind = 'annotate'")" \
	"dpo-annotate --annotator alice|labels=2.0"
ok "stats counts alice's labels" dpo-db --db "$T/team.db" stats
like "stats: alice" "$(cat "$T/.out")" "alice"

# ---- merging twice adds nothing
cp "$T/team.db" "$T/team1.db"
ok "merge again" dpo-db --db "$T/team.db" merge "$T/alice.db"
is "merge again: all duplicates" "$(cat "$T/.out")" \
	"$T/alice.db: prompts 0 new / 3 duplicate, completions 0 new / 6 duplicate, labels 0 new / 4 duplicate, 0 conflicting (0 replaced by the later label), annotators 0 new, runs 0 new, metrics 0 new, gold items 0 new"
is "merge again: the same rows" "$(q "$T/team.db" "SELECT count(*) FROM comparisons") $(q "$T/team.db" "SELECT count(*) FROM runs")" \
	"$(q "$T/team1.db" "SELECT count(*) FROM comparisons") $(q "$T/team1.db" "SELECT count(*) FROM runs")"
ok "merge --json" dpo-db --db "$T/team.db" merge --json "$T/alice.db"
like "merge --json: the counts" "$(cat "$T/.out")" '"labels_new": 0, "labels_duplicate": 4, "labels_conflicting": 0'

# ---- binary feedback and ratings come too
printf '%s\n' '{"prompt": "Q2?", "completion": "x2", "label": true}' >"$T/kto.jsonl"
ok "feedback in alice's copy" dpo-db --db "$T/alice.db" import "$T/kto.jsonl"
ok "merge the feedback" dpo-db --db "$T/team.db" merge --json "$T/alice.db"
like "one feedback label came in" "$(cat "$T/.out")" '"ratings_new": 0, "ratings_conflicting": 0, "feedback_new": 1, "feedback_conflicting": 0, "gold_new": 0}'
is "it is on Q2's x2" "$(q "$T/team.db" "SELECT p.content || ' ' || c.text || ' ' || f.good FROM feedback f JOIN prompts p ON p.id = f.prompt_id JOIN completions c ON c.id = f.completion_id")" "Q2? x2 1"
# alice's copy says otherwise now: ours stays, and the merge says so
q "$T/alice.db" "UPDATE feedback SET good = 0"
ok "merge a differing feedback label" dpo-db --db "$T/team.db" merge "$T/alice.db"
like "it is reported" "$(cat "$T/.out")" "; 0 ratings and 1 binary labels there differ from the ones here (kept)"
ok "merge --json: counted" dpo-db --db "$T/team.db" merge --json "$T/alice.db"
like "as feedback_conflicting" "$(cat "$T/.out")" '"feedback_new": 0, "feedback_conflicting": 1,'
is "ours stays" "$(q "$T/team.db" "SELECT good FROM feedback")" 1
q "$T/alice.db" "UPDATE feedback SET good = 1"
# a rating alice gave x2 comes in; given otherwise later, it is counted, ours stays
q "$T/alice.db" "INSERT INTO ratings(completion_id, annotator_id, aspect, value, scale_min, scale_max, created_at)
	SELECT c.id, a.id, 'help', 4, 1, 5, '2026-01-02T11:00:00Z' FROM completions c, annotators a WHERE c.text = 'x2' AND a.name = 'alice'"
ok "merge a rating" dpo-db --db "$T/team.db" merge --json "$T/alice.db"
like "it came in" "$(cat "$T/.out")" '"ratings_new": 1, "ratings_conflicting": 0,'
q "$T/alice.db" "UPDATE ratings SET value = 2"
ok "merge it given otherwise" dpo-db --db "$T/team.db" merge --json "$T/alice.db"
like "counted as ratings_conflicting" "$(cat "$T/.out")" '"ratings_new": 0, "ratings_conflicting": 1,'
is "ours stays" "$(q "$T/team.db" "SELECT c.text || ' ' || r.aspect || ' ' || r.value FROM ratings r JOIN completions c ON c.id = r.completion_id")" "x2 help 4.0"
q "$T/alice.db" "UPDATE ratings SET value = 4"

# ---- a completion two models gave is credited to both after the merge
printf '%s\n' '{"prompt": "Q2?", "completions": [{"text": "x2", "model": "m-alice"}]}' >"$T/cand.jsonl"
ok "alice's copy credits x2 to m-alice too" dpo-db --db "$T/alice.db" import "$T/cand.jsonl"
ok "merge the credit" dpo-db --db "$T/team.db" merge "$T/alice.db"
is "x2 is credited to every generator (the KTO file's source too)" "$(q "$T/team.db" "SELECT group_concat(g.name, ' ') FROM completion_generators cg JOIN generators g ON g.id = cg.generator_id JOIN completions c ON c.id = cg.completion_id WHERE c.text = 'x2' ORDER BY g.name")" "team kto m-alice"

# ---- gold marks come too: alice marked Q1 gold in her copy (x1 the better
# one; her pair order is the other one), so Q1 leaves the team's exports
gold() { # DB PROMPT BETTER: mark PROMPT's pair gold with BETTER the better one
	q "$1" "INSERT INTO gold(completion_a, completion_b, prompt_id, answer, source, created_at)
	SELECT min(w.id, l.id), max(w.id, l.id), p.id, CASE WHEN w.id < l.id THEN 'a' ELSE 'b' END, 'lead', '2026-01-03T08:00:00Z'
	FROM prompts p JOIN completions w ON w.prompt_id = p.id AND w.text = '$3'
		JOIN completions l ON l.prompt_id = p.id AND l.id <> w.id WHERE p.content = '$2'"
}
gold "$T/alice.db" Q1? x1
is "alice's copy: Q1's gold answer in her order (x1 second)" "$(q "$T/alice.db" "SELECT answer FROM gold")" b
ok "export before the gold merge" dpo-db --db "$T/team.db" export "$T/before.jsonl"
like "Q1 is exported" "$(cat "$T/before.jsonl")" '"prompt": "Q1?"'
ok "merge the gold mark" dpo-db --db "$T/team.db" merge "$T/alice.db"
like "one gold item came in" "$(cat "$T/.out")" "gold items 1 new"
is "the team's gold item: Q1, x1 the better one, its source and time" \
	"$(q "$T/team.db" "SELECT p.content || ' ' || w.text || ' ' || g.answer || ' ' || g.source || ' ' || g.created_at FROM gold g JOIN prompts p ON p.id = g.prompt_id JOIN completions w ON w.id = CASE g.answer WHEN 'a' THEN g.completion_a ELSE g.completion_b END")" \
	"Q1? x1 a lead 2026-01-03T08:00:00Z"
ok "the merged store is sound" dpo-db --db "$T/team.db" check
ok "export after the gold merge" dpo-db --db "$T/team.db" export "$T/after.jsonl"
ok "Q1 is not exported any more" sh -c "! grep -q '\"prompt\": \"Q1?\"' '$T/after.jsonl'"
is "the other pairs still are" "$(wc -l <"$T/after.jsonl")" $(($(wc -l <"$T/before.jsonl") - 1))
ok "merge --json again" dpo-db --db "$T/team.db" merge --json "$T/alice.db"
like "no gold item twice" "$(cat "$T/.out")" '"gold_new": 0}'
# bob's copy says y1 is the better one: which answer is right is not the
# merge's to guess, so it stops and nothing comes in
cp "$T/alice.db" "$T/bob.db"
q "$T/bob.db" "UPDATE gold SET answer = 'a'; UPDATE annotators SET name = 'bob'"
s=$(sum "$T/team.db")
dpo-db --db "$T/team.db" merge "$T/bob.db" >/dev/null 2>"$T/err"
is "merge a copy whose gold answer differs: exit 1" "$?" 1
like "names the gold item and both answers" "$(cat "$T/err")" \
	"bob.db: merging failed: a gold item of prompt 1 ("
like "... by completion" "$(cat "$T/err")" "has completion 1 as the better one here and completion 2 there"
ok "... and the store is byte-identical" test "$(sum "$T/team.db")" = "$s"
is "... bob's labels did not come in" "$(q "$T/team.db" "SELECT count(*) FROM annotators WHERE name = 'bob'")" 0

# ---- the import runs' provenance comes too: remove --run takes back here
# what alice's import of alice.jsonl added here (Q4, its completions and
# label; Q2 was here before, so it stays)
run=$(q "$T/team.db" "SELECT run_id FROM import_files WHERE path LIKE '%/alice.jsonl'")
is "alice.jsonl's import run and file came in" \
	"$(q "$T/team.db" "SELECT count(*) || ' ' || sha256 FROM import_files WHERE run_id = '$run'")" \
	"1 $(q "$T/alice.db" "SELECT sha256 FROM import_files WHERE path LIKE '%/alice.jsonl'")"
is "its records here: Q2 was here before (referred to), Q4 came with it (added)" \
	"$(q "$T/team.db" "SELECT group_concat(p.content || ':' || r.prompt_created || ':' || (SELECT group_concat(json_extract(j.value, '\$[2]'), '') FROM json_each(r.items) j), ' ') FROM provenance_records r JOIN prompts p ON p.id = r.prompt_id WHERE r.run_id = '$run'")" \
	"Q2?:0:000 Q4?:1:111"
ok "remove --run of that import, --dry-run" dpo-db --db "$T/team.db" remove --run "$run" --dry-run
like "takes back Q4 and what came with it, not Q2" "$(cat "$T/.out")" \
	"would remove 1 comparison, 2 completions, 1 prompt, 0 annotators, 0 generators (of 1 run;"
n=$(q "$T/team.db" "SELECT count(*) FROM provenance_records")
ok "merge again" dpo-db --db "$T/team.db" merge "$T/alice.db"
is "merging again adds no provenance" "$(q "$T/team.db" "SELECT count(*) FROM provenance_records")" "$n"
cp "$T/team.db" "$T/team2.db"
ok "remove --run of that import" dpo-db --db "$T/team2.db" remove --run "$run"
is "Q4 is gone, Q2 stays with its completions" \
	"$(q "$T/team2.db" "SELECT group_concat(content || ':' || n_completions, ' ') FROM (SELECT content, n_completions FROM prompts ORDER BY content)")" \
	"Q1?:2 Q2?:2 Q3?:2"
ok "the store is sound after it" dpo-db --db "$T/team2.db" check

# ---- mistakes change nothing
s=$(sum "$T/team.db")
dpo-db --db "$T/team.db" merge "$T/team.db" >/dev/null 2>"$T/err"
is "merge the store into itself: exit 1" "$?" 1
like "says why" "$(cat "$T/err")" "is the database itself"
dpo-db --db "$T/team.db" merge "$T/nosuch.db" >/dev/null 2>"$T/err"
is "merge a missing store: exit 1" "$?" 1
ok "... and it is not created" test ! -e "$T/nosuch.db"
dpo-db --db "$T/typo.db" merge "$T/alice.db" >/dev/null 2>"$T/err"
is "merge into a missing --db: exit 1" "$?" 1
ok "... not created" test ! -e "$T/typo.db"
echo '{"prompt": "x"}' >"$T/not.db"
dpo-db --db "$T/team.db" merge "$T/not.db" >/dev/null 2>"$T/err"
is "merge a file that is not a store: exit 1" "$?" 1
like "says so" "$(cat "$T/err")" "not a dpo database"
ok "after the mistakes the store is byte-identical" test "$(sum "$T/team.db")" = "$s"
dpo-db --db "$T/team.db" merge >/dev/null 2>&1
is "merge with no store named: usage error" "$?" 2

# ---- dpo-db assign: a fair share for each, every pair at the overlap
i=1
: >"$T/nine.jsonl"
while [ $i -le 9 ]; do
	echo "{\"prompt\": \"Task $i?\", \"completions\": [\"a$i\", \"b$i\", \"c$i\"]}" >>"$T/nine.jsonl"
	i=$((i + 1))
done
ok "nine prompts of three completions (27 pairs)" dpo-db --db "$T/as.db" import "$T/nine.jsonl"
cp "$T/as.db" "$T/as0.db"
ok "assign --dry-run" dpo-db --db "$T/as.db" assign --annotators al,bo --annotators cy --overlap 2 --dry-run
is "assign --dry-run: the counts" "$(cat "$T/.out")" \
	"(dry run, nothing changed) assigned 54 pair slots at overlap 2: al +18 (18 open), bo +18 (18 open), cy +18 (18 open)"
ok "assign --dry-run changes nothing" cmp "$T/as.db" "$T/as0.db"
ok "assign" dpo-db --db "$T/as.db" assign --annotators al,bo,cy --overlap 2
is "assign: 18 each" "$(q "$T/as.db" "SELECT group_concat(annotator || '=' || n, ' ') FROM (SELECT annotator, count(*) n FROM assignments GROUP BY 1 ORDER BY 1)")" \
	"al=18 bo=18 cy=18"
is "assign: every pair to two annotators" \
	"$(q "$T/as.db" "SELECT count(*) || ' ' || min(n) || ' ' || max(n) FROM (SELECT count(*) n FROM assignments GROUP BY completion_a, completion_b)")" "27 2 2"
ok "assign again" dpo-db --db "$T/as.db" assign --annotators al,bo,cy --overlap 2 --json
like "assign again adds nothing" "$(cat "$T/.out")" '"assignments_new": 0, "pairs_short": 0'
printf '%s\n' '{"prompt": "Task 10?", "completions": ["a10", "b10"]}' >"$T/ten.jsonl"
ok "a new prompt" dpo-db --db "$T/as.db" import "$T/ten.jsonl"
ok "assign after it" dpo-db --db "$T/as.db" assign --annotators al,bo,cy --overlap 2
like "assign after it: only its pair, twice" "$(cat "$T/.out")" "assigned 2 pair slots at overlap 2"
dpo-db --db "$T/as.db" assign --annotators al,bo --overlap 3 >/dev/null 2>"$T/err"
is "assign --overlap above the team: usage error" "$?" 2
like "says why" "$(cat "$T/err")" "--overlap 3 needs at least 3 annotators (2 given)"
dpo-db --db "$T/as.db" assign --overlap 1 >/dev/null 2>&1
is "assign without --annotators: usage error" "$?" 2
dpo-db --db "$T/as.db" assign --annotators al,al >/dev/null 2>"$T/err"
is "assign naming one annotator twice: exit 1" "$?" 1
like "says so" "$(cat "$T/err")" 'annotator "al" is named twice'

done_testing
