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

# ---- the end of a long conversation ------------------------------------------------
start hank 80 24 --db "$DB" --annotator hank --source hh
ok "80x24: the final human turn of an HH dialogue is visible" \
	wait_for hank "H: FINAL TURN: so which bridge should I visit first?"
is "the prompt pane starts right under the header (no blank leading lines)" \
	"$(screen hank | sed -n 2p | cut -c1-3)" "A: "
lines=$(screen hank | head -n 1 | sed -n 's|.*prompt lines [0-9]*-\([0-9]*\)/\([0-9]*\).*|\1 \2|p')
ok "the header says the prompt shows its last lines ($lines)" test -n "$lines" -a "${lines% *}" = "${lines#* }"
keys hank BTab Home
ok "the start of the dialogue is up the prompt pane" wait_for hank "H: Question number 1 about the history"
keys hank q
is "dialogue session quits" "$(wait_exit hank)" 0
start chat 80 24 --db "$DB" --annotator chat --source chat
ok "chat prompts: user role" wait_for chat "user: Chat final question?"
ok "chat prompts: assistant role" wait_for chat "assistant: Chat answer."
keys chat q
is "chat session quits" "$(wait_exit chat)" 0

# the real thing: the longest HH-RLHF harmless-base dialogue among the first 200
HH=$DPO_SHARED/data/hh-rlhf/harmless-base/test-first200.jsonl.gz
if [ -f "$HH" ] && command -v python3 >/dev/null 2>&1; then
	HDB=$T/hh.db
	dpo-db --db "$HDB" import --format hh --skip-bad "$T/hh.rejects" -q "$HH" >/dev/null 2>&1
	ok "HH-RLHF sample imported" test -s "$HDB"
	# a dialogue of the most turns whose final human turn fits a line, and a
	# search string unique to it (its first human turn's start)
	sqlite3 -separator '	' "$HDB" "SELECT id, replace(replace(content, char(10), '\n'), char(9), ' ') FROM prompts" >"$T/hh.prompts"
	python3 - "$T/hh.prompts" >"$T/hh.pick" <<'PY'
import sys
rows = []
for line in open(sys.argv[1], encoding="utf-8"):
    pid, text = line.rstrip("\n").split("\t", 1)
    rows.append(text.replace("\\n", "\n"))
best = None
for text in rows:
    humans = [t.split("\n\nAssistant:")[0].strip() for t in text.split("\n\nHuman:")[1:]]
    if len(humans) < 3 or len(humans[-1]) > 60 or not humans[-1]:
        continue
    key = humans[0][:24]
    if sum(key.lower() in r.lower() for r in rows) != 1 or "\n" in key:
        continue
    if best is None or len(text) > len(best[0]):
        best = (text, key, humans[-1])
print(best[1]); print(best[2])
PY
	key=$(sed -n 1p "$T/hh.pick") final=$(sed -n 2p "$T/hh.pick")
	ok "a multi-turn dialogue picked ($final)" test -n "$final"
	# its pairs carry the dataset's own labels: --overlap 2 offers them to a human
	start real 80 24 --db "$HDB" --annotator real --overlap 2
	ok "HH session starts" wait_for real "real | item 1/"
	keys real / "$key" Enter
	ok "search finds the dialogue" wait_for real "Found"
	ok "80x24: its final human turn is on screen" wait_for real "H: $final"
	keys real q
	is "HH session quits" "$(wait_exit real)" 0
else
	ok "# SKIP the HH-RLHF sample is not in ../shared" true
fi

# ---- a locked database -------------------------------------------------------------
# lock NAME: another writer takes the database's write lock (sqlite3 in an
# open BEGIN EXCLUSIVE) until unlock NAME.
lock() {
	rm -f "$T/$1.release" "$T/$1.locked"
	(echo 'BEGIN EXCLUSIVE;'; echo "SELECT 'locked';"; while [ ! -f "$T/$1.release" ]; do sleep 0.05; done; echo 'COMMIT;') |
		sqlite3 "$DB" >"$T/$1.locked" 2>&1 &
	i=0
	while [ $i -lt 200 ] && ! grep -q locked "$T/$1.locked" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
}
unlock() { touch "$T/$1.release"; wait; }
DB=$T/lock.db
"$MKDB" "$DB" "$DATA/screen.jsonl"
start lena 80 24 --db "$DB" --annotator lena --source screen
ok "locked: first item" wait_for lena "Screen one: pick a fruit."
lock L1
ok "another writer holds the lock" grep -q locked "$T/L1.locked"
keys lena 1
ok "a label on a locked database says it waits" wait_for lena "Waiting for the database"
ok "... in the status line too" wait_for lena "waiting for the database…"
ok "... still on the same item" wait_for lena "Screen one: pick a fruit."
keys lena '?'
ok "the screen stays responsive while it waits (help opens)" wait_for lena "Keys (arrows scroll"
keys lena Escape
ok "the wait goes on, counted in seconds" wait_for lena " s (left better kept"
is "nothing stored while locked" "$(votes lena)" 0
unlock L1
ok "the waiting label is stored once the lock is gone" wait_for lena "Saved: left better (the database is free again)."
ok "... and the session moves on" wait_for lena "Screen two: pick a tree."
is "the label is in the store" "$(votes lena)" 1
lock L2
keys lena 2 u
ok "u takes a waiting label back" wait_for lena "taken back (it was never stored)"
keys lena t q
ok "q while a label waits asks again" wait_for lena "q again quits without it"
sleep 2.2
ok "... and keeps saying so while the wait goes on (the retry ticks)" wait_for lena "still waiting ("
keys lena q
is "a second q quits: exit 1, the label not saved" "$(wait_exit lena)" 1
like "the goodbye line says the label was not saved" "$(cat "$T/lena.err")" "the last label was NOT saved"
unlock L2
is "the tie was not stored, nothing lost or half-written" "$(votes lena)" 1
start lena2 80 24 --db "$DB" --annotator lena --source screen
ok "the unsaved item is offered again" wait_for lena2 "Screen two: pick a tree."
lock L3
keys lena2 x
ok "waiting again" wait_for lena2 "Waiting for the database"
t0=$(date +%s)
signal lena2 INT
is "Ctrl-C (SIGINT) quits at once while a label waits (130)" "$(wait_exit lena2)" 130
ok "... within 3 s" test $(($(date +%s) - t0)) -le 3
unlock L3
mv "$T/lena.err" "$T/lena.err.checked"
mv "$T/lena2.err" "$T/lena2.err.checked"

# ---- format characters, emoji, Ctrl-L ----------------------------------------------
DB=$T/fmt.db
"$MKDB" "$DB" "$DATA/screen.jsonl"
# U+1FAE8 (Unicode 15) is drawn as itself where the C library's wcwidth
# knows it, else as the placeholder; never as a blank
emoji=$(python3 -c 'import ctypes, locale
locale.setlocale(locale.LC_ALL, "C.UTF-8")
print("\U0001FAE8" if ctypes.CDLL(None).wcwidth(0x1FAE8) > 0 else "\uFFFD")' 2>/dev/null || echo '?')
start fmt 80 24 --db "$DB" --annotator fmt --source fmt
ok "format characters: item shown" wait_for fmt "Fmt: a"
is "ZWJ, ZWSP and bidi controls drawn as placeholders, CJK intact, the emoji not blank" \
	"$(screen fmt | sed -n 2p | sed 's/ *$//')" "Fmt: a�日本 b�語 c�X� d${emoji}e end"
ok "a completion with a ZWJ before CJK keeps its cells" wait_for fmt "zwj�日本"
tty=$(tm display-message -p -t fmt '#{pane_tty}')
printf '\033[5;1HGARBAGE-OVER-THE-PANE' >"$tty"
sleep 0.3
like "text written over the pane stays until a repaint" "$(screen fmt)" "GARBAGE-OVER-THE-PANE"
keys fmt C-l
sleep 0.5
case "$(screen fmt)" in *GARBAGE-OVER-THE-PANE*) r=1 ;; *) r=0 ;; esac
is "Ctrl-L repaints every cell (the garbage is gone)" "$r" 0
ok "... and the screen is drawn again" wait_for fmt "Fmt: a"
keys fmt q
is "format session quits" "$(wait_exit fmt)" 0

# ---- --strength ---------------------------------------------------------------------
DB=$T/strength.db
"$MKDB" "$DB" "$DATA/screen.jsonl"
conf() { q "SELECT group_concat(coalesce(c.confidence, 'none'), ',') FROM (SELECT c.* FROM comparisons c
	JOIN annotators a ON a.id = c.annotator_id WHERE a.name = '$1' ORDER BY c.id) c"; }
start sam 80 24 --db "$DB" --annotator sam --strength
ok "--strength: the hint names the strength keys" wait_for sam "!/@ much better"
keys sam '!'
ok "! saves left much better" wait_for sam "Saved: left much better."
keys sam 2
ok "2 saves right slightly better" wait_for sam "Saved: right slightly better."
keys sam t
ok "t saves a tie" wait_for sam "Saved: tie."
keys sam '@'
ok "@ saves right much better" wait_for sam "Saved: right much better."
is "stored as confidence 1, 0.75, none, 1" "$(conf sam)" "1.0,0.75,none,1.0"
keys sam q
is "strength session quits" "$(wait_exit sam)" 0
start sue 80 24 --db "$DB" --annotator sue --overlap 2
ok "without --strength: plain keys" wait_for sue "1/← left"
keys sue '!'
sleep 0.3
is "without --strength, ! stores nothing" "$(votes sue)" 0
keys sue 1
ok "1 saves a plain label" wait_for sue "Saved: left better."
is "a plain label has no confidence" "$(conf sue)" "none"
keys sue q
is "plain session quits" "$(wait_exit sue)" 0

no_stray_errors
done_testing
