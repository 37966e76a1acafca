#!/bin/sh
# cli_db_concurrency.sh: two processes importing into one database at the
# same time both succeed and nothing is lost.
. "$top_srcdir/tests/tap.sh"
DB="$T/c.db"
N=1000

# Two files of distinct pairs (one prompt per line).
awk -v n=$N -v tag=one 'BEGIN { for (i = 0; i < n; i++)
	printf "{\"prompt\": \"%s question %d\", \"chosen\": \"good %d\", \"rejected\": \"bad %d\"}\n", tag, i, i, i }' \
	>"$T/one.jsonl"
awk -v n=$N -v tag=two 'BEGIN { for (i = 0; i < n; i++)
	printf "{\"prompt\": \"%s question %d\", \"chosen\": \"good %d\", \"rejected\": \"bad %d\"}\n", tag, i, i, i }' \
	>"$T/two.jsonl"

# Both start on a database that does not exist yet (they race to create it).
for round in 1 2; do
	dpo-db --db "$DB" import --quiet "$T/one.jsonl" >"$T/one.out" 2>"$T/one.err" &
	p1=$!
	dpo-db --db "$DB" import --quiet "$T/two.jsonl" >"$T/two.out" 2>"$T/two.err" &
	p2=$!
	wait $p1
	s1=$?
	wait $p2
	s2=$?
	is "round $round: first import succeeded" "$s1" 0
	[ "$s1" = 0 ] || sed 's/^/#   /' "$T/one.err"
	is "round $round: second import succeeded" "$s2" 0
	[ "$s2" = 0 ] || sed 's/^/#   /' "$T/two.err"
done

dpo-db --db "$DB" stats --json >"$T/s.json"
is "every prompt arrived once" \
	"$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["totals"]["prompts"], d["totals"]["comparisons"])' "$T/s.json")" \
	"$((2 * N)) $((2 * N))"
ok "check passes" dpo-db --db "$DB" check

# A reader (export) while a writer imports.
dpo-db --db "$T/r.db" import --quiet "$T/one.jsonl" >/dev/null 2>&1
dpo-db --db "$T/r.db" import --quiet "$T/two.jsonl" >/dev/null 2>"$T/w.err" &
pw=$!
dpo-db --db "$T/r.db" export "$T/r.jsonl" 2>"$T/r.err"
sr=$?
wait $pw
sw=$?
is "export while importing succeeds" "$sr" 0
is "the concurrent import succeeds" "$sw" 0
lines=$(wc -l <"$T/r.jsonl" | tr -d ' ')
ok "the export saw a consistent snapshot ($lines pairs)" sh -c "[ $lines = $N ] || [ $lines = $((2 * N)) ]"

done_testing
