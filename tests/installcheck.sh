#!/bin/sh
# installcheck.sh: the installed programs work from where `make install` put
# them, with their built-in data folder ($(pkgdatadir)) and no help from the
# source tree: dpo-judge finds its default template and price table, the
# demo task's files are usable from $(pkgdatadir)/task, dpo-db report writes
# HTML, every program answers --help/--version, every man page is found.
# Run by `make installcheck` (tests/installcheck.mk), which passes DESTDIR,
# bindir, mandir, pkgdatadir, programs ($(bin_PROGRAMS)), transform (the
# configured program name transformation), manpages and datafiles. Prints TAP.
#
# With DESTDIR set the install is staged: the programs still look for their
# data in $(pkgdatadir), which is not populated yet, so DPO_DATADIR points at
# $(DESTDIR)$(pkgdatadir) instead, and a separate case checks that the built-in
# folder of dpo-judge is exactly $(pkgdatadir). Without DESTDIR (a real
# prefix, as in `make distcheck`) DPO_DATADIR stays unset.
top_srcdir=${top_srcdir:-.}
. "$top_srcdir/tests/tap.sh"
: "${bindir:?}" "${mandir:?}" "${pkgdatadir:?}"
DESTDIR=${DESTDIR:-}
programs=${programs:-dpo-db dpo-model dpo-generate dpo-annotate dpo-judge dpo-train dpo-eval}
programs=$(for p in $programs; do echo "${p##*/}"; done)  # names without a folder
# the installed name of program or man page $1 (configure's --program-prefix etc.)
inst() {
	echo "$1" | sed "${transform:-s,x,x,}"
}
unset DPO_DATADIR DPO_DB OPENAI_API_KEY ANTHROPIC_API_KEY OPENAI_BASE_URL ANTHROPIC_BASE_URL
PATH="$DESTDIR$bindir:$PATH"
export PATH
data=$DESTDIR$pkgdatadir
if [ -n "$DESTDIR" ]; then
	DPO_DATADIR=$data
	export DPO_DATADIR
	echo "# staged install (DESTDIR=$DESTDIR): DPO_DATADIR=$DPO_DATADIR"
else
	echo "# installed in $bindir, data in $pkgdatadir; DPO_DATADIR unset"
fi
# a scratch folder: no ./dpo.db, ./prices.json or templates of the caller's
cd "$T" || exit 1

# one skipped case (tap.sh has only skip_all)
skip() {
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n - $1 # SKIP $2"
}

# ---- the installed files -----------------------------------------------------------------------------
for p in $programs; do
	is "$p is the installed one" "$(command -v "$(inst "$p")")" "$DESTDIR$bindir/$(inst "$p")"
done
# share/X/F is installed as $(pkgdatadir)/X/F, where util_datadir() looks
for f in $datafiles; do
	ok "installed: \$(pkgdatadir)/${f#share/}" test -f "$data/${f#share/}"
done
ok "no \$(pkgdatadir)/share folder (data one level too deep)" test ! -e "$data/share"
if [ -n "$DESTDIR" ]; then
	# the staged run cannot use the built-in folder itself; check that it is
	# the folder the data went to
	is "dpo-judge's built-in data folder is \$(pkgdatadir)" \
		"$(tr '\0' '\n' <"$DESTDIR$bindir/$(inst dpo-judge)" | grep -Fx "$pkgdatadir")" "$pkgdatadir"
fi

# ---- --help and --version ----------------------------------------------------------------------------
for p in $programs; do
	ok "$p --help" "$(inst "$p")" --help
	like "$p --help prints a usage" "$(cat "$T/.out")" "Usage: $p"
	ok "$p --version" "$(inst "$p")" --version
	like "$p --version names it" "$(cat "$T/.out")" "$p (dpo) "
done

DB=$(inst dpo-db) MODEL=$(inst dpo-model) GEN=$(inst dpo-generate) JUDGE=$(inst dpo-judge)

# ---- man pages, found through MANPATH ----------------------------------------------------------------
for m in $manpages; do
	page=$(inst "$(basename "$m" .1)")
	ok "man page installed: $page.1" test -f "$DESTDIR$mandir/man1/$page.1"
	if command -v man >/dev/null 2>&1; then
		is "man -w $page (MANPATH=\$(DESTDIR)\$(mandir))" \
			"$(MANPATH="$DESTDIR$mandir" man -w "$page" 2>/dev/null)" "$DESTDIR$mandir/man1/$page.1"
	else
		skip "man -w $page" "man is not installed (Debian: man-db)"
	fi
done

# ---- dpo-judge: default template and price table from the data folder --------------------------------
# ./dpo.db (no --db, DPO_DB unset) from the installed example candidates
ok "dpo-db import (installed examples/candidates.jsonl) into ./dpo.db" \
	"$DB" import -q "$data/examples/candidates.jsonl"
ok "./dpo.db created" test -f "$T/dpo.db"
"$JUDGE" --model gpt-4o-mini --dry-run >"$T/dry.out" 2>"$T/dry.err"
is "dpo-judge --model gpt-4o-mini --dry-run: exit 0" "$?" 0
like "dry run: 18 pairs in both orders" "$(cat "$T/dry.out")" "18 pairs, 36 requests to send"
like "dry run: a cost estimate (prices.json found)" "$(cat "$T/dry.out")" \
	"estimated cost: at most \$0.0239 (gpt-4o-mini at \$0.15 in / \$0.6 out per 1M tokens)"
is "dry run: no warning" "$(cat "$T/dry.err")" ""
# request shaping from the installed models.json: a reasoning model takes
# --reasoning-effort, another model does not
"$JUDGE" --model o3-mini --reasoning-effort low --dry-run >/dev/null 2>"$T/re.err"
is "dpo-judge --model o3-mini --reasoning-effort low (models.json found): exit 0" "$?" 0
"$JUDGE" --model gpt-4o-mini --reasoning-effort low --dry-run >/dev/null 2>"$T/re.err"
is "dpo-judge --model gpt-4o-mini --reasoning-effort low: usage error" "$?" 2
like "... because the installed models.json says so" "$(cat "$T/re.err")" "gpt-4o-mini takes no reasoning_effort"
# the reference template by its bare name
i=1
while [ $i -le 6 ]; do
	printf '{"prompt_id": %d, "reference": "reference answer %d"}\n' $i $i
	i=$((i + 1))
done >"$T/refs.jsonl"
"$JUDGE" --model gpt-4o-mini --template pairwise-reference --references "$T/refs.jsonl" --dry-run \
	>"$T/ref.out" 2>"$T/ref.err"
is "dpo-judge --template pairwise-reference --dry-run: exit 0" "$?" 0
like "reference template: 36 requests" "$(cat "$T/ref.out")" "18 pairs, 36 requests to send"
like "reference template: a cost estimate" "$(cat "$T/ref.out")" "estimated cost: at most \$"
is "reference template: no warning" "$(cat "$T/ref.err")" ""
"$JUDGE" --model gpt-4o-mini --template pairwise-reference --dry-run >/dev/null 2>"$T/noref.err"
is "reference template without --references: exit 2" "$?" 2
like "... and the installed template is named" "$(cat "$T/noref.err")" "$data/judge/pairwise-reference.txt"
"$JUDGE" --model gpt-4o-mini --template no-such-template --dry-run >/dev/null 2>&1
is "an unknown template: exit 1" "$?" 1

# --mode rating and rank find their own installed templates (rating.txt,
# rank.txt): they get as far as the (closed) server and stop there
for m in rating rank; do
	"$JUDGE" --model gpt-4o-mini --mode $m --base-url http://127.0.0.1:9/v1 -q >/dev/null 2>"$T/mode.err"
	is "dpo-judge --mode $m against a closed port: exit 1" "$?" 1
	like "... it reached the request stage (the installed $m.txt loaded)" "$(cat "$T/mode.err")" \
		"cannot reach http://127.0.0.1:9/v1"
done

# ---- the demo task's files from $(pkgdatadir)/task ---------------------------------------------------
ok "dpo-model init --config \$(pkgdatadir)/task/config.json --tokenizer \$(pkgdatadir)/task" \
	"$MODEL" init --config "$data/task/config.json" --tokenizer "$data/task" --out "$T/m" --seed 1
ok "dpo-model info" "$MODEL" info "$T/m"
like "info: the task's tiny llama" "$(cat "$T/.out")" "parameters:        123264"
ok "dpo-model tokenize with the installed tokenizer" "$MODEL" tokenize "$T/m" "48213>"
is "byte-level ids" "$(cat "$T/.out")" "53 57 51 50 52 63"
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3
elif command -v python3 >/dev/null 2>&1; then PY=python3
else PY=; fi
if [ -n "$PY" ]; then
	$PY "$data/task/task.py" prompts --split test --n 8 >"$T/prompts.jsonl" 2>"$T/task.err"
	is "task.py prompts: exit 0" "$?" 0
	ok "dpo-db import --format prompts (task.py's prompts)" \
		"$DB" --db "$T/task.db" import --format prompts --source task --split test -q "$T/prompts.jsonl"
	ok "dpo-generate from the task model" "$GEN" --db "$T/task.db" --model "$T/m" --name init --n 2 \
		--split test --max-new-tokens 4 --threads 1
else
	skip "task.py prompts" "python3 is not installed"
fi

# ---- dpo-db report -----------------------------------------------------------------------------------
ok "dpo-judge --provider exec labels ./dpo.db" \
	"$JUDGE" --provider exec --command "cat >/dev/null; echo A" --no-swap --concurrency 2 -q
ok "dpo-db report writes HTML" "$DB" report "$T/r.html"
ok "report: file written" test -s "$T/r.html"
like "report: an HTML page" "$(head -c 200 "$T/r.html")" "<!DOCTYPE html>"
like "report: judge labels drawn" "$(cat "$T/r.html")" "<svg"

done_testing
