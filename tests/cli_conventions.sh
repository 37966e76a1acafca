#!/bin/sh
# cli_conventions.sh: the command-line conventions of ../shared/DESIGN.md hold
# for every program and subcommand alike (one option table, one parser):
# --help on stdout with exit 0, --version, unknown options and bad values exit
# 2 in one wording with the --help hint, and the config file's [dpo] section
# reaches every program that has the option.
. "$top_srcdir/tests/tap.sh"

VERSION=$(sed -n 's/^AC_INIT(\[dpo\], \[\([^]]*\)\].*/\1/p' "$top_srcdir/configure.ac")
COMMANDS="dpo-db
dpo-db init
dpo-db check
dpo-db import
dpo-db export
dpo-db stats
dpo-db agreement
dpo-db split
dpo-db report
dpo-model
dpo-model info
dpo-model tokenize
dpo-model detokenize
dpo-model score
dpo-model generate
dpo-model init
dpo-model import-llama2c
dpo-generate
dpo-annotate
dpo-judge
dpo-train
dpo-eval"

printf '%s\n' "$COMMANDS" >"$T/commands"
while read -r cmd; do
	# shellcheck disable=SC2086 # the command is a program and its subcommand
	$cmd --help >"$T/help" 2>"$T/err"
	is "$cmd --help: exit 0" "$?" 0
	is "$cmd --help: nothing on stderr" "$(cat "$T/err")" ""
	like "$cmd --help: starts with its usage line" "$(head -n 1 "$T/help")" "Usage: $cmd"
	like "$cmd --help: lists --help" "$(cat "$T/help")" "--help"
	# shellcheck disable=SC2086
	$cmd --no-such-option >"$T/out" 2>"$T/err"
	is "$cmd --no-such-option: exit 2" "$?" 2
	is "$cmd --no-such-option: nothing on stdout" "$(cat "$T/out")" ""
	is "$cmd --no-such-option: one wording" "$(cat "$T/err")" \
		"$cmd: unknown option --no-such-option
Try '$cmd --help' for more information."
	if grep -q -- '--threads N' "$T/help"; then
		# shellcheck disable=SC2086
		$cmd --threads 0 >/dev/null 2>"$T/err"
		is "$cmd --threads 0: exit 2" "$?" 2
		like "$cmd --threads 0: the range" "$(head -n 1 "$T/err")" \
			"$cmd: --threads: expected an integer in [1, 4096], got \"0\""
		printf '[dpo]\nthreads = many\n' >"$T/config"
		# shellcheck disable=SC2086
		DPO_CONFIG="$T/config" $cmd --help >/dev/null 2>"$T/err"
		is "$cmd: a bad [dpo] threads in the config file: exit 2" "$?" 2
		like "$cmd: ... names the file and line" "$(head -n 1 "$T/err")" \
			"$T/config:2: threads: expected an integer in [1, 4096], got \"many\""
	fi
done <"$T/commands"

for p in dpo-db dpo-model dpo-generate dpo-annotate dpo-judge dpo-train dpo-eval; do
	is "$p --version" "$($p --version)" "$p (dpo) $VERSION"
done

# --db and --json are spelt and described the same everywhere they exist
while read -r cmd; do
	# shellcheck disable=SC2086
	$cmd --help >"$T/help"
	if grep -q -- '--db' "$T/help"; then
		ok "$cmd: --db PATH described as everywhere" \
			grep -Eq -- '^      --db PATH +database \(default \$DPO_DB, else \./dpo\.db\)$' "$T/help"
	fi
	if grep -q -- '--json' "$T/help"; then
		ok "$cmd: --json described as everywhere" \
			grep -Eq -- '^      --json +print the result as one JSON document$' "$T/help"
	fi
done <"$T/commands"

done_testing
