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

no_stray_errors
done_testing
