#!/bin/sh
# cli_safe.sh: no command destroys data by mistake (DESIGN.md, issue #12):
# an output that names the database (or its -wal/-shm) or an input is
# refused before anything is written; outputs are replaced atomically, so a
# failing command leaves an existing one intact; commands that only read
# never create a database.
. "$top_srcdir/tests/tap.sh"
EX="$top_srcdir/share/examples/preferences.jsonl"
DB="$T/t.db"
status() { "$@" >/dev/null 2>&1; echo $?; }
cp "$EX" "$T/x.jsonl"
dpo-db --db "$DB" import "$T/x.jsonl" >/dev/null 2>&1
sum() { cksum <"$1"; }
dbsum=$(sum "$DB")
xsum=$(sum "$T/x.jsonl")
nodb="create one with dpo-db init or dpo-db import"

# ---- an output over the database or an input is refused, nothing written
dpo-db --db "$DB" import "$T/x.jsonl" --skip-bad "$T/x.jsonl" >/dev/null 2>"$T/err"
is "import --skip-bad INPUT: exit 1" "$?" 1
is "import --skip-bad INPUT: the input is intact" "$(sum "$T/x.jsonl")" "$xsum"
like "import --skip-bad INPUT: says why" "$(cat "$T/err")" \
	"dpo-db: $T/x.jsonl: refusing to write the output over the input file $T/x.jsonl"
dpo-db --db "$DB" import "$T/x.jsonl" --skip-bad "$T/./x.jsonl" >/dev/null 2>&1
is "import --skip-bad INPUT spelled otherwise: exit 1" "$?" 1
ln -s x.jsonl "$T/link.jsonl"
is "import --skip-bad through a link to the input: exit 1" \
	"$(status dpo-db --db "$DB" import "$T/x.jsonl" --skip-bad "$T/link.jsonl")" 1
dpo-db --db "$DB" import "$T/x.jsonl" --skip-bad "$DB" >/dev/null 2>"$T/err"
is "import --skip-bad DB: exit 1" "$?" 1
like "import --skip-bad DB: says why" "$(cat "$T/err")" \
	"dpo-db: $DB: refusing to write the output over the database"
is "import --skip-bad DB-wal: exit 1" \
	"$(status dpo-db --db "$DB" import "$T/x.jsonl" --skip-bad "$DB-wal")" 1
is "import --skip-bad DB-shm: exit 1" \
	"$(status dpo-db --db "$DB" import "$T/x.jsonl" --skip-bad "$DB-shm")" 1
is "import --skip-bad NEW.db (the new database itself): exit 1" \
	"$(status dpo-db --db "$T/new.db" import "$T/x.jsonl" --skip-bad "$T/new.db")" 1
ok "... and no database was created" test ! -e "$T/new.db"
dpo-db --db "$DB" export "$DB" >/dev/null 2>"$T/err"
is "export DB: exit 1" "$?" 1
like "export DB: says why" "$(cat "$T/err")" "dpo-db: $DB: refusing to write the output over the database"
dpo-db --db "$DB" report "$DB" >/dev/null 2>"$T/err"
is "report DB: exit 1" "$?" 1
like "report DB: says why" "$(cat "$T/err")" "dpo-db: $DB: refusing to write the output over the database"
is "report DB-wal: exit 1" "$(status dpo-db --db "$DB" report "$DB-wal")" 1
is "the database is intact" "$(sum "$DB")" "$dbsum"
ok "the database still checks" dpo-db --db "$DB" check
is "the input is intact" "$(sum "$T/x.jsonl")" "$xsum"
ok "export to a new file still works" dpo-db --db "$DB" export "$T/out.jsonl"
ok "report to a new file still works" dpo-db --db "$DB" report "$T/r.html"
ok "import --skip-bad to a new file still works" dpo-db --db "$DB" import "$T/x.jsonl" --skip-bad "$T/rej.jsonl"
ok "... it is written (empty: no bad records)" test -f "$T/rej.jsonl" -a ! -s "$T/rej.jsonl"
ls "$T" | grep -q '\.tmp\.' && leftover=yes || leftover=no
is "no temporary files left behind" "$leftover" no
# that import added no data, but it is recorded as a run: the database's
# bytes from here on
dbsum=$(sum "$DB")

# dpo-train --out / --log-json and dpo-model --out (checked before loading anything)
printf '{"prompt": "p", "chosen": "a", "rejected": "b"}\n' >"$T/p.jsonl"
psum=$(sum "$T/p.jsonl")
dpo-train --from-jsonl "$T/p.jsonl" --model "$T/m" --out "$T/o" --log-json "$T/p.jsonl" 2>"$T/err"
is "dpo-train --log-json INPUT: exit 1" "$?" 1
like "dpo-train --log-json INPUT: says why" "$(cat "$T/err")" \
	"dpo-train: $T/p.jsonl: refusing to write the output over the input file $T/p.jsonl"
is "dpo-train --log-json INPUT: the input is intact" "$(sum "$T/p.jsonl")" "$psum"
mkdir -p "$T/ck" && printf 'weights\n' >"$T/ck/model.safetensors"
dpo-train --from-jsonl "$T/p.jsonl" --resume "$T/ck" --out "$T/ck" 2>"$T/err"
is "dpo-train --out = the --resume checkpoint: exit 1" "$?" 1
like "dpo-train --out = the --resume checkpoint: says why" "$(cat "$T/err")" \
	"refusing to write the output over the input file $T/ck"
is "dpo-train --out = the --resume checkpoint: intact" "$(cat "$T/ck/model.safetensors")" weights
dpo-train --from-jsonl "$T/p.jsonl" --model "$T/m" --out "$T/p.jsonl" 2>"$T/err"
is "dpo-train --out INPUT: exit 1" "$?" 1
like "dpo-train --out INPUT: says why" "$(cat "$T/err")" \
	"dpo-train: $T/p.jsonl: refusing to write the output over the input file $T/p.jsonl"
dpo-train --from-jsonl "$T/p.jsonl" --model "$T" --out "$T/" 2>"$T/err"
is "dpo-train --out MODEL: exit 1" "$?" 1
like "dpo-train --out MODEL: says why" "$(cat "$T/err")" "refusing to write the output over the input file $T"
dpo-train --from-db --db "$DB" --model "$T/m" --out "$T/o" --log-json "$DB" 2>"$T/err"
is "dpo-train --log-json DB: exit 1" "$?" 1
like "dpo-train --log-json DB: says why" "$(cat "$T/err")" "refusing to write the output over the database"
dpo-train --from-db --db "$DB" --model "$T/m" --out "$DB" 2>"$T/err"
is "dpo-train --out DB: exit 1" "$?" 1
like "dpo-train --out DB: says why" "$(cat "$T/err")" "dpo-train: $DB: refusing to write the output over the database"
is "the database is intact after dpo-train" "$(sum "$DB")" "$dbsum"
mkdir "$T/cfgdir"
printf '{}\n' >"$T/cfgdir/config.json"
dpo-model init --config "$T/cfgdir/config.json" --out "$T/cfgdir" 2>"$T/err"
is "dpo-model init --out over its --config: exit 1" "$?" 1
like "dpo-model init: says why" "$(cat "$T/err")" "refusing to write the output over the input file"
is "dpo-model init: the config is intact" "$(cat "$T/cfgdir/config.json")" "{}"
dpo-model import-llama2c "$T/p.jsonl" --out "$T/p.jsonl" 2>"$T/err"
is "dpo-model import-llama2c --out CHECKPOINT: exit 1" "$?" 1
like "dpo-model import-llama2c: says why" "$(cat "$T/err")" \
	"dpo-model: $T/p.jsonl: refusing to write the output over the input file $T/p.jsonl"

# ---- a failing export leaves an existing output intact
printf 'precious\n' >"$T/keep.jsonl"
cp "$DB" "$T/bad.db"
sqlite3 "$T/bad.db" "DROP TABLE comparisons" 2>/dev/null || sqlite3 "$T/bad.db" "PRAGMA writable_schema=1; DELETE FROM sqlite_master WHERE name='comparisons'"
is "export from a damaged database: exit 1" "$(status dpo-db --db "$T/bad.db" export "$T/keep.jsonl")" 1
is "... the existing OUT is intact" "$(cat "$T/keep.jsonl")" precious
is "report from a damaged database: exit 1" "$(status dpo-db --db "$T/bad.db" report "$T/keep.jsonl")" 1
is "... the existing OUT is intact" "$(cat "$T/keep.jsonl")" precious
dpo-db --db "$DB" import --skip-bad "$T/keep.jsonl" "$T/x.jsonl" "$T/nosuch.jsonl" >/dev/null 2>&1
is "an import that fails: exit 1" "$?" 1
is "... the existing REJECTS is intact" "$(cat "$T/keep.jsonl")" precious
ls "$T" | grep -q '\.tmp\.' && leftover=yes || leftover=no
is "no temporary files left behind by the failures" "$leftover" no

# ---- commands that only read never create a database
typo="$T/typo.db"
before=$(sum "$DB")
for c in stats agreement check "export $T/e.jsonl" "report $T/e.html" "split --test-fraction 0.1" \
	runs "remove --run 1" "remove --source x --dry-run" "assign --annotators a,b" "derive-pairs --from-ratings x" \
	"merge $DB" "export --format kto $T/e.jsonl" "export --with-meta $T/e.jsonl"; do
	dpo-db --db "$typo" $c >/dev/null 2>"$T/err"
	is "dpo-db $c on a missing database: exit 1" "$?" 1
	like "dpo-db $c: says so" "$(cat "$T/err")" "dpo-db: $typo: no such database ($nodb)"
	ok "dpo-db $c: no database created" test ! -e "$typo"
done
ok "dpo-db export: no output written" test ! -e "$T/e.jsonl" -a ! -e "$T/e.html"
ok "dpo-db merge into a missing database: the other store is untouched" test "$(sum "$DB")" = "$before"
dpo-db --db "$DB" export --format kto "$DB" >/dev/null 2>"$T/err"
is "export --format kto DB: exit 1" "$?" 1
ok "export --format kto DB: the database is intact" test "$(sum "$DB")" = "$before"
dpo-judge --db "$typo" --dry-run --provider exec --command true >/dev/null 2>"$T/err"
is "dpo-judge --dry-run on a missing database: exit 1" "$?" 1
like "dpo-judge: says so" "$(cat "$T/err")" "dpo-judge: $typo: no such database ($nodb)"
ok "dpo-judge: no database created" test ! -e "$typo"
# dpo-annotate needs a terminal: script(1) gives it one
if command -v script >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; then
	# (timeout: a dpo-annotate that opened the store would wait for keys)
	timeout 30 script -qec "dpo-annotate --db '$typo' --annotator me" /dev/null >"$T/err" 2>&1 </dev/null
	is "dpo-annotate on a missing database: exit 1" "$?" 1
	like "dpo-annotate: says so" "$(cat "$T/err")" "dpo-annotate: $typo: no such database ($nodb)"
	ok "dpo-annotate: no database created" test ! -e "$typo"
fi
dpo-model init --config "$top_srcdir/share/task/config.json" --tokenizer "$top_srcdir/share/task" \
	--out "$T/m" --seed 1 >/dev/null 2>&1
dpo-train --from-db --db "$typo" --model "$T/m" --out "$T/o" --steps 1 --quiet >/dev/null 2>"$T/err"
is "dpo-train --from-db on a missing database: exit 1" "$?" 1
like "dpo-train: says so" "$(cat "$T/err")" "dpo-train: $typo: no such database ($nodb)"
ok "dpo-train: no database created" test ! -e "$typo"
dpo-eval --db "$typo" --policy "$T/m" --baseline "$T/m" >/dev/null 2>"$T/err"
is "dpo-eval on a missing database: exit 1" "$?" 1
like "dpo-eval: says so" "$(cat "$T/err")" "dpo-eval: $typo: no such database ($nodb)"
ok "dpo-eval: no database created" test ! -e "$typo"
ok "dpo-db init still creates one" dpo-db --db "$T/i.db" init
ok "dpo-db import still creates one" dpo-db --db "$T/j.db" import "$T/x.jsonl"

# ---- a database on read-only media is read (immutable when its -shm cannot
# be created). Root ignores permissions, so this mounts a read-only tmpfs in
# a private mount namespace; skipped where that is not allowed.
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
	mkdir "$T/ro"
	unshare -m sh -c '
		mount -t tmpfs none "$1/ro" && cp "$2" "$1/ro/t.db" && mount -o remount,ro "$1/ro" || exit 99
		dpo-db --db "$1/ro/t.db" stats >"$1/ro-stats" 2>"$1/ro-err"; echo $? >"$1/ro-rc"
		dpo-db --db "$1/ro/t.db" export "$1/ro.jsonl" 2>/dev/null; echo $? >>"$1/ro-rc"
		dpo-db --db "$1/ro/t.db" report "$1/ro.html" 2>/dev/null; echo $? >>"$1/ro-rc"
		dpo-db --db "$1/ro/t.db" split --test-fraction 0.5 >/dev/null 2>&1; echo $? >>"$1/ro-rc"' sh "$T" "$DB"
	mounted=$?
	if [ "$mounted" = 99 ]; then
		echo "# could not mount a read-only tmpfs: read-only media not tested"
	else
		is "read-only media: stats, export, report work; split fails" "$(cat "$T/ro-rc" | tr '\n' ' ')" "0 0 0 1 "
		like "read-only media: stats reads it" "$(cat "$T/ro-stats")" "totals: 12 prompts"
		like "read-only media: says it opened it immutable" "$(cat "$T/ro-err")" \
			"dpo-db: $T/ro/t.db: cannot be written (read-only folder or media); opened it read-only as immutable"
		is "read-only media: the export is the same" "$(cat "$T/ro.jsonl")" "$(dpo-db --db "$DB" export - 2>/dev/null)"
	fi
else
	echo "# not root or no mount namespaces: read-only media not tested"
fi

done_testing
