#!/bin/sh
# cli_annotate_multi.sh: dpo-annotate inside tmux, part two: two annotators
# labeling the same database at once (nothing lost), overlap, review mode,
# colours on and off, Ctrl-C and SIGTERM, and the command line.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_annotate_lib.sh"

DB=$T/ann.db
ok "test database built through the store API" "$MKDB" "$DB" "$DATA/candidates.jsonl" --judge

# ---- two annotators on the same database at once --------------------------------------
start p1 100 30 --db "$DB" --annotator p1 --overlap 3 --order random --seed 1
start p2 100 30 --db "$DB" --annotator p2 --overlap 3 --order random --seed 2
ok "p1 ready" wait_for p1 "item 1/"
ok "p2 ready" wait_for p2 "item 1/"
for i in 1 2 3 4 5 6 7; do
	keys p1 1
	keys p2 2
done
ok "p1 labeled everything" wait_for p1 "Nothing left to label"
ok "p2 labeled everything" wait_for p2 "Nothing left to label"
keys p1 q
keys p2 q
is "p1 quits" "$(wait_exit p1)" 0
is "p2 quits" "$(wait_exit p2)" 0
is "no label lost by either annotator" "$(votes p1) $(votes p2)" "7 7"
is "no error from either" "$(cat "$T/p1.err" "$T/p2.err" | grep -vc 'labeled in this session')" 0

# ---- overlap 1: what others labeled is not offered -------------------------------------
start bob 100 30 --db "$DB" --annotator bob
ok "overlap 1 leaves out pairs labeled by others" wait_for bob "Nothing left to label"
keys bob q
wait_exit bob >/dev/null

# ---- review ---------------------------------------------------------------------------
RDB=$T/review.db
ok "review database" "$MKDB" "$RDB" "$DATA/candidates.jsonl" --disagree
start rev 100 30 --db "$RDB" --annotator rev --review
ok "review shows the disputed pair" wait_for rev "Verdicts on this pair:"
ok "review shows each annotator's verdict" wait_for rev "h2 (human):"
ok "review queue: one pair per prompt" wait_for rev "item 1/5"
keys rev 1
ok "review label moves on" wait_for rev "item 2/5"
keys rev q
wait_exit rev >/dev/null
is "reviewer's verdict stored" "$(sqlite3 "$RDB" "SELECT count(*) FROM comparisons c JOIN annotators a ON a.id = c.annotator_id WHERE a.name = 'rev'")" 1

# ---- colours, signals -----------------------------------------------------------------
start nc 100 30 --db "$RDB" --annotator nc --no-color
ok "--no-color session" wait_for nc "item 1/"
keys nc d
ok "diff on without colours" wait_for nc "Word diff on."
is "no colour escapes with --no-color" "$(tm capture-pane -p -e -t nc | grep -c '\[[34][0-7]m')" 0
keys nc C-c
is "Ctrl-C exits 130" "$(wait_exit nc)" 130
start col 100 30 --db "$RDB" --annotator col
ok "colour session" wait_for col "item 1/"
keys col d
ok "diff on with colours" wait_for col "Word diff on."
ok "colours used by default" sh -c "tmux -L '$SOCK' capture-pane -p -e -t col | grep -q '\[[34][0-7]m'"
signal col TERM
is "SIGTERM exits 130 with the terminal restored" "$(wait_exit col)" 130

# ---- a crash loses nothing: kill -9 after two labels ---------------------------------
start crash 100 30 --db "$RDB" --annotator crash --overlap 5
ok "crash session" wait_for crash "item 1/"
keys crash 1
ok "crash: first label" wait_for crash "item 2/"
keys crash 2
ok "crash: second label" wait_for crash "item 3/"
signal crash KILL
is "killed" "$(wait_exit crash)" 137
rm -f "$T/crash.err"
is "both labels survive a crash" "$(sqlite3 "$RDB" "SELECT count(*) FROM comparisons c JOIN annotators a ON a.id = c.annotator_id WHERE a.name = 'crash'")" 2
start crash2 100 30 --db "$RDB" --annotator crash --overlap 5
ok "after a crash, resume at the first unlabeled item" wait_for crash2 "item 1/5"
keys crash2 q
wait_exit crash2 >/dev/null

# ---- command line ---------------------------------------------------------------------
ok "--help" dpo-annotate --help
ok "--version" dpo-annotate --version
dpo-annotate --mode bogus >/dev/null 2>&1
is "bad --mode is a usage error" $? 2
dpo-annotate --overlap 0 >/dev/null 2>&1
is "bad --overlap is a usage error" $? 2
dpo-annotate --db "$DB" --annotator x </dev/null >/dev/null 2>"$T/notty.msg"
is "no terminal: failure" $? 1
like "no terminal: says so" "$(cat "$T/notty.msg")" "needs a terminal"
dpo-annotate --db "$DB" --annotator x --guidelines "$T/missing.txt" >/dev/null 2>"$T/g.msg"
is "missing guidelines file: failure" $? 1
like "missing guidelines file: named" "$(cat "$T/g.msg")" "missing.txt"

no_stray_errors
done_testing
