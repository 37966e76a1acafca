#!/bin/sh
# cli_annotate_opts.sh: dpo-annotate's command line on the one option table
# (util/opt.h): --help, a range error's wording, an unknown option, a bad
# config value, and a default from the config file's [dpo-annotate] section
# used, then overridden by the command line (seen in the status line of the
# TUI, driven in tmux, and in the store).
. "$top_srcdir/tests/tap.sh"

# ---- without a terminal -----------------------------------------------------------
dpo-annotate --help >"$T/help.out" 2>"$T/help.msg"
is "--help exits 0" $? 0
like "--help lists the options of the table" "$(cat "$T/help.out")" "--overlap N"
like "--help keeps the keys" "$(cat "$T/help.out")" "Keys: 1 or Left: left better"
like "--help keeps the exit-status line with 130" "$(cat "$T/help.out")" "130 interrupted"
like "--help names the config section" "$(cat "$T/help.out")" "[dpo-annotate]"
is "--help writes nothing to stderr" "$(cat "$T/help.msg")" ""

dpo-annotate --overlap 1001 >"$T/range.out" 2>"$T/range.msg"
is "--overlap out of range exits 2" $? 2
is "range error in the one wording" "$(head -n 1 "$T/range.msg")" \
	'dpo-annotate: --overlap: expected an integer in [1, 1000], got "1001"'
like "range error says where to look" "$(cat "$T/range.msg")" "Try 'dpo-annotate --help'"
is "a usage error prints nothing on stdout" "$(cat "$T/range.out")" ""
dpo-annotate --limit=0 >/dev/null 2>"$T/limit.msg"
is "--limit=0 exits 2" $? 2
is "--limit range error" "$(head -n 1 "$T/limit.msg")" 'dpo-annotate: --limit: expected an integer in [1, inf), got "0"'
dpo-annotate --order shuffled >/dev/null 2>"$T/order.msg"
is "--order outside its choices exits 2" $? 2
is "--order names the choices" "$(head -n 1 "$T/order.msg")" \
	'dpo-annotate: --order: expected one of random, sequential, uncertain, got "shuffled"'

dpo-annotate --bogus >/dev/null 2>"$T/unknown.msg"
is "an unknown option exits 2" $? 2
is "an unknown option is named" "$(head -n 1 "$T/unknown.msg")" "dpo-annotate: unknown option --bogus"
dpo-annotate stray >/dev/null 2>&1
is "a positional argument exits 2" $? 2

printf '[dpo-annotate]\noverlap = 0\n' >"$T/bad.config"
DPO_CONFIG=$T/bad.config dpo-annotate --annotator x >/dev/null 2>"$T/badcfg.msg"
is "a bad value in the config file exits 2" $? 2
is "a bad config value names file, line and key" "$(head -n 1 "$T/badcfg.msg")" \
	"dpo-annotate: $T/bad.config:2: overlap: expected an integer in [1, 1000], got \"0\""

printf '# annotate as cora unless told otherwise\n[dpo-annotate]\nannotator = cora\n' >"$T/config"
DPO_CONFIG=$T/config dpo-annotate --help >"$T/cfghelp.out" 2>&1
like "--help shows the config file's default" "$(cat "$T/cfghelp.out")" "(default cora, from $T/config)"

# ---- in a terminal: the config's annotator, then the command line's ---------------
if ! command -v tmux >/dev/null 2>&1 || ! command -v sqlite3 >/dev/null 2>&1 ||
	[ ! -x "$top_builddir/tests/annotate_mkdb" ]; then
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n # SKIP config default in the TUI: needs tmux, sqlite3 and tests/annotate_mkdb"
	done_testing
fi
# the private tmux server starts with this environment, so every session reads $T/config
DPO_CONFIG=$T/config
export DPO_CONFIG
. "$top_srcdir/tests/cli_annotate_lib.sh"

DB=$T/ann.db
ok "test database built through the store API" "$MKDB" "$DB" "$DATA/candidates.jsonl"
start cfg 100 30 --db "$DB"
ok "the config file's annotator is used" wait_for cfg "cora | item 1/"
keys cfg q
is "config session quits" "$(wait_exit cfg)" 0
start cmd 100 30 --db "$DB" --annotator dan
ok "--annotator overrides the config file" wait_for cmd "dan | item 1/"
keys cmd q
is "overriding session quits" "$(wait_exit cmd)" 0
is "the store knows both annotators" \
	"$(q "SELECT group_concat(name, ',') FROM (SELECT name FROM annotators WHERE name IN ('cora', 'dan') ORDER BY name)")" \
	"cora,dan"

no_stray_errors
done_testing
