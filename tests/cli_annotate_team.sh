#!/bin/sh
# cli_annotate_team.sh: three annotators at once on one store (issue #14):
# each pair shown is claimed in the store, so at overlap 1 every pair gets
# exactly one label and at overlap 2 exactly two, however the keypresses of
# the three sessions interleave; nothing is labelled twice by one
# annotator, nothing is lost. All three use one order (one seed), the worst
# case: without claims they would show the same pair at once.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_annotate_lib.sh"
command -v dpo-db >/dev/null 2>&1 || skip_all "dpo-db not built"

# 10 prompts x 3 completions: 30 pairs
: >"$T/team.jsonl"
i=1
while [ $i -le 10 ]; do
	echo "{\"prompt\": \"Question $i?\", \"completions\": [\"first answer $i\", \"second answer $i\", \"third answer $i\"]}" >>"$T/team.jsonl"
	i=$((i + 1))
done

# team OVERLAP: three sessions label until each has nothing left, one key
# at a time round the three (each waits for its screen to move on, so the
# sessions interleave pair by pair)
team() {
	for n in a1 a2 a3; do
		start "$n" 100 30 --db "$DB" --annotator "$n" --overlap "$1" --order random --seed 7
	done
	for n in a1 a2 a3; do
		wait_for "$n" "item " >/dev/null || wait_for "$n" "Nothing left" >/dev/null
	done
	round=0
	while [ $round -lt 40 ]; do
		busy=0
		for n in a1 a2 a3; do
			s=$(screen "$n") || continue
			case "$s" in *"Nothing left to label"*) continue ;; esac
			busy=1
			before=$(votes "$n")
			keys "$n" $(( (round % 2) + 1 ))
			j=0
			while [ $j -lt 100 ] && [ "$(votes "$n")" = "$before" ]; do
				sleep 0.03
				j=$((j + 1))
			done
		done
		[ $busy = 0 ] && break
		round=$((round + 1))
	done
	for n in a1 a2 a3; do
		keys "$n" q
		wait_exit "$n" >/dev/null
		tm kill-session -t "$n" 2>/dev/null
	done
}

for overlap in 1 2; do
	DB=$T/team$overlap.db
	dpo-db --db "$DB" import -q "$T/team.jsonl" >/dev/null 2>&1
	team $overlap
	is "overlap $overlap: $((30 * overlap)) labels in all" \
		"$(q "SELECT count(*) FROM comparisons c JOIN annotators a ON a.id = c.annotator_id WHERE a.kind = 'human'")" \
		$((30 * overlap))
	is "overlap $overlap: every pair labelled exactly $overlap times" \
		"$(q "SELECT count(*) || ' ' || min(n) || ' ' || max(n) FROM (SELECT count(*) n FROM comparisons GROUP BY completion_a, completion_b)")" \
		"30 $overlap $overlap"
	is "overlap $overlap: no pair labelled twice by one annotator" \
		"$(q "SELECT count(*) FROM (SELECT count(*) n FROM comparisons GROUP BY completion_a, completion_b, annotator_id HAVING n > 1)")" 0
	is "overlap $overlap: every session ended cleanly" "$(cat "$T/a1.exit" "$T/a2.exit" "$T/a3.exit" | tr '\n' ' ')" "0 0 0 "
	is "overlap $overlap: no claim left behind" "$(q "SELECT count(*) FROM claims")" 0
	echo "# overlap $overlap: labels per annotator: $(votes a1) $(votes a2) $(votes a3)"
done
no_stray_errors

done_testing
