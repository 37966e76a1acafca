#!/bin/sh
# cli_db_merge_real.sh: dpo-db merge on real data (../shared/data): a copy
# that imported HH-RLHF and UltraFeedback in one command (two runs alike:
# same command, start and process) and the LLaMA-Factory demo the team's
# store has too comes back; each import run stays its own, and remove --run
# takes back from the merged store exactly what each added, as it would
# from the copy.
. "$top_srcdir/tests/tap.sh"
have_shared || skip_all "no ../shared data"
command -v sqlite3 >/dev/null 2>&1 || skip_all "no sqlite3 to count rows"
data="$DPO_SHARED/data"
hh="$data/hh-rlhf/harmless-base/test-first200.jsonl.gz"
uf="$data/ultrafeedback-binarized-sample/eval_clean.jsonl"
lf="$data/llama-factory-demo/v1_dpo_demo.jsonl"
q() { sqlite3 "$1" "$2"; }
ok "the team's store: the LLaMA-Factory demo" dpo-db --db "$T/team.db" import "$lf"
ok "the copy: HH-RLHF and UltraFeedback in one command" \
	dpo-db --db "$T/copy.db" import --skip-bad "$T/bad.jsonl" "$hh" "$uf"
ok "... and the demo too" dpo-db --db "$T/copy.db" import "$lf"
# what each import run would take back from the copy
for r in 1 2; do
	dpo-db --db "$T/copy.db" remove --run $r --dry-run >"$T/copy$r.txt" 2>&1
done
ok "merge" dpo-db --db "$T/team.db" merge "$T/copy.db"
like "the counts" "$(cat "$T/.out")" "prompts 398 new / 10 duplicate, completions 796 new / 20 duplicate, labels 398 new / 10 duplicate"
like "three runs came in" "$(cat "$T/.out")" "runs 3 new"
ok "the merged store is sound" dpo-db --db "$T/team.db" check
# a run by its file's name (the store keeps the absolute path)
run_of() { q "$T/team.db" "SELECT run_id FROM import_files WHERE path LIKE '%/$(basename "$1")'"; }
is "HH-RLHF and UltraFeedback: two runs, each with its file" \
	"$(q "$T/team.db" "SELECT count(DISTINCT run_id) FROM import_files WHERE path LIKE '%/test-first200.jsonl.gz' OR path LIKE '%/eval_clean.jsonl'")" 2
is "each run's labels are its own" \
	"$(q "$T/team.db" "SELECT group_concat(n, ' ') FROM (SELECT count(*) AS n FROM comparisons WHERE run_id IN ($(run_of "$hh"), $(run_of "$uf")) GROUP BY run_id)")" "199 199"
dpo-db --db "$T/team.db" remove --run "$(run_of "$hh")" --dry-run >"$T/team1.txt" 2>&1
is "remove --run of the HH-RLHF import: as from the copy" "$(cat "$T/team1.txt")" "$(cat "$T/copy1.txt")"
dpo-db --db "$T/team.db" remove --run "$(run_of "$uf")" --dry-run >"$T/team2.txt" 2>&1
is "remove --run of the UltraFeedback import: as from the copy" "$(cat "$T/team2.txt")" "$(cat "$T/copy2.txt")"
like "... 199 of each" "$(cat "$T/team2.txt")" "would remove 199 comparisons, 398 completions, 199 prompts"
ok "remove both" sh -c "dpo-db --db '$T/team.db' remove --run $(run_of "$hh") && dpo-db --db '$T/team.db' remove --run $(run_of "$uf")"
is "the team's store is back to the demo" \
	"$(q "$T/team.db" "SELECT (SELECT count(*) FROM prompts) || ' ' || (SELECT count(*) FROM completions) || ' ' || (SELECT count(*) FROM comparisons)")" "10 20 10"
ok "and sound" dpo-db --db "$T/team.db" check
done_testing
