#!/bin/sh
# cli_annotate.sh: end-to-end test of dpo-annotate driven inside tmux
# (send-keys, capture-pane): label, undo, note, scrolling, help, guidelines,
# diff, resize, search, quit, resume and rank mode; the comparisons are
# checked in the DB with sqlite3. cli_annotate_multi.sh covers two
# annotators at once, review, colours, signals and the command line.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_annotate_lib.sh"

DB=$T/ann.db
ok "test database built through the store API" "$MKDB" "$DB" "$DATA/candidates.jsonl" --judge
is "7 pairs to label" "$(q "SELECT count(*) FROM comparisons") $(q "SELECT count(*) FROM completions")" "7 11"

# ---- label, undo, note, show-judge, side by side -------------------------------
start alice 100 30 --db "$DB" --annotator alice --show-judge --guidelines "$DATA/guidelines.txt"
ok "first item shown" wait_for alice "Alpha prompt: name a colour."
ok "side by side at 100 columns" wait_for alice "Left [1/Left]"
ok "status line: annotator, position, done/total" wait_for alice "alice | item 1/7 | done 0/7"
keys alice 1
ok "label 1 moves to the next item" wait_for alice "item 2/7"
ok "judge verdict revealed after the label" wait_for alice "Judge judge:test:"
ok "agreement figure in the status line" wait_for alice "judge agree"
ok "wide characters drawn" wait_for alice "日本語で挨拶してください。"
keys alice Right
ok "Right arrow labels" wait_for alice "item 3/7"
ok "conversation shown turn by turn" wait_for alice "assistant:"
# short completions leave the prompt room for the whole conversation (the
# line indicator of a longer one: cli_annotate_screen.sh)
ok "the conversation is shown to its last turn" wait_for alice "user: And three plus three?"
like "... and from its first turn" "$(screen alice)" "system: You are terse."
keys alice BTab End
ok "Shift-Tab focuses the prompt, End scrolls it to the last turn" wait_for alice "And three plus three?"
keys alice Home
ok "Home scrolls back to the top" wait_for alice "You are terse."
keys alice t
ok "tie labels" wait_for alice "item 4/7"
is "three labels committed at once" "$(votes alice)" 3
keys alice u
ok "undo goes back" wait_for alice "item 3/7"
is "undo deletes the label" "$(votes alice)" 2
keys alice n 'short and right' Enter
ok "note kept" wait_for alice "note set"
keys alice x
ok "both bad labels" wait_for alice "item 4/7"
is "label after undo stored" "$(votes alice)" 3
is "verdicts relative to the shown order" \
	"$(q "SELECT group_concat(CASE WHEN verdict IN ('a','b') THEN (verdict = shown_first) ELSE verdict END, ',')
	      FROM (SELECT c.* FROM comparisons c JOIN annotators a ON a.id = c.annotator_id
	            WHERE a.name = 'alice' ORDER BY c.prompt_id)")" "1,0,both_bad"
is "note stored as the rationale" "$(q "SELECT rationale FROM comparisons WHERE verdict = 'both_bad'")" "short and right"
is "decision times stored" "$(q "SELECT count(*) FROM comparisons c JOIN annotators a ON a.id = c.annotator_id
				 WHERE a.name = 'alice' AND duration_ms >= 0")" 3
keys alice '?'
ok "? shows every key" wait_for alice "Keys (arrows scroll"
keys alice Escape g
ok "g shows the guidelines" wait_for alice "Prefer honesty over confidence."
keys alice Escape d
ok "d turns the word diff on" wait_for alice "Word diff on."
tm resize-window -t alice -x 80 -y 24
ok "stacked when the terminal shrinks" wait_for alice "Upper (left) [1/Left]"
tm resize-window -t alice -x 100 -y 30
ok "side by side again when it grows" wait_for alice "Left [1/Left]"
keys alice / zebra Enter
ok "search jumps to the matching prompt" wait_for alice "Echo prompt: a zebra question"
keys alice q
is "q quits with status 0" "$(wait_exit alice)" 0
ok "terminal given back (the shell runs again)" test -s "$T/alice.exit"
like "goodbye names what was saved" "$(cat "$T/alice.err")" "3 items labeled in this session"

# ---- resume ---------------------------------------------------------------------------
start alice2 100 30 --db "$DB" --annotator alice
ok "resume at the first unlabeled item" wait_for alice2 "Delta prompt: rank these greetings"
ok "resumed queue holds what is left" wait_for alice2 "item 1/4"
keys alice2 u
ok "undo does not reach into the last session" wait_for alice2 "Nothing to undo"
keys alice2 q
is "resumed session quits" "$(wait_exit alice2)" 0
is "nothing lost across sessions" "$(votes alice)" 3

# ---- rank mode ------------------------------------------------------------------------
start rita 80 24 --db "$DB" --annotator rita --mode rank --source ranks
ok "rank mode shows every completion" wait_for rita "3 completions: press the number"
keys rita 2
ok "a pick is shown" wait_for rita "so far: 2"
keys rita u 3
ok "u takes a pick back" wait_for rita "so far: 3"
keys rita 1
ok "ranking saved" wait_for rita "Saved ranking 3 > 1 > 2 (3 comparisons)"
is "stored as 3 implied comparisons" "$(votes rita)" 3
# a strict order: the completions win 2, 1 and 0 of their comparisons
is "implied comparisons form the ranking" "$(q "SELECT group_concat(w, ',') FROM (
	SELECT count(*) AS w FROM (SELECT CASE verdict WHEN 'a' THEN completion_a ELSE completion_b END AS win
	FROM comparisons c JOIN annotators a ON a.id = c.annotator_id WHERE a.name = 'rita') GROUP BY win ORDER BY w DESC)")" "2,1"
keys rita q
is "rank session quits" "$(wait_exit rita)" 0

no_stray_errors
done_testing
