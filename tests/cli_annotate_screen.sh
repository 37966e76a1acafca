#!/bin/sh
# cli_annotate_screen.sh: what the annotator sees in dpo-annotate, driven in
# tmux: keys on the too-small screen, the end of a long conversation in the
# prompt pane, notes that follow the item shown, Ctrl-L, format characters,
# and a locked database that does not freeze the screen.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_annotate_lib.sh"

DB=$T/screen.db
ok "test database built through the store API" "$MKDB" "$DB" "$DATA/screen.jsonl"

# ---- the too-small screen --------------------------------------------------------
start tiny 29 9 --db "$DB" --annotator tiny --source screen
ok "29x9 is too small" wait_for tiny "Terminal too small"
keys tiny 2 1 t x s u n
sleep 0.3
is "label keys store nothing on the too-small screen" "$(votes tiny)" 0
ok "still the too-small screen" wait_for tiny "Terminal too small"
tm resize-window -t tiny -x 80 -y 24
ok "the item appears once the terminal is large enough" wait_for tiny "Screen one: pick a fruit."
ok "still at the first item" wait_for tiny "tiny | item 1/2"
tm resize-window -t tiny -x 29 -y 9
ok "too small again" wait_for tiny "Terminal too small"
keys tiny q
is "q quits the too-small screen" "$(wait_exit tiny)" 0
is "nothing stored" "$(votes tiny)" 0

# ---- notes follow the item shown ---------------------------------------------------
start nina 80 24 --db "$DB" --annotator nina --source screen
ok "notes: first item" wait_for nina "Screen one: pick a fruit."
keys nina n 'fruit note' Enter 1
ok "labeled with a note" wait_for nina "Screen two: pick a tree."
keys nina n 'tree note' Enter
ok "note set on item 2" wait_for nina "note set"
keys nina u
ok "undo goes back to item 1" wait_for nina "Screen one: pick a fruit."
keys nina n
ok "n shows item 1's stored note for editing" wait_for nina "Esc cancels): fruit note"
keys nina BSpace BSpace BSpace BSpace remark Enter 2
ok "item 1 labeled again" wait_for nina "Screen two: pick a tree."
is "item 1's note went to item 1 (edited), nothing to item 2 yet" \
	"$(q "SELECT group_concat(p.content || '=' || c.rationale, ';') FROM comparisons c JOIN annotators a ON a.id = c.annotator_id
	      JOIN prompts p ON p.id = c.prompt_id WHERE a.name = 'nina'")" "Screen one: pick a fruit.=fruit remark"
keys nina n
ok "item 2 kept its own note" wait_for nina "Esc cancels): tree note"
keys nina Enter t
ok "queue finished" wait_for nina "Nothing left to label"
is "item 2's note went to item 2" \
	"$(q "SELECT c.rationale FROM comparisons c JOIN annotators a ON a.id = c.annotator_id
	      JOIN prompts p ON p.id = c.prompt_id WHERE a.name = 'nina' AND p.content LIKE 'Screen two%'")" "tree note"
keys nina q
is "notes session quits" "$(wait_exit nina)" 0

no_stray_errors
done_testing
