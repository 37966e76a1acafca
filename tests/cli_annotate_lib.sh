# cli_annotate_lib.sh: helpers of the tmux-driven dpo-annotate tests
# (sourced after tests/tap.sh): a private tmux server killed at exit, and
# start / screen / wait_for / wait_exit / keys / q / votes.
command -v tmux >/dev/null 2>&1 || skip_all "tmux is not installed"
command -v sqlite3 >/dev/null 2>&1 || skip_all "the sqlite3 command-line tool is not installed"
ANN=$(command -v dpo-annotate) || skip_all "dpo-annotate not built"
MKDB=$top_builddir/tests/annotate_mkdb
[ -x "$MKDB" ] || skip_all "tests/annotate_mkdb not built"
DATA=$top_srcdir/tests/data/annotate

# A private tmux server, killed at the end whatever happens.
SOCK=dpo-ann-test-$$
tm() { tmux -L "$SOCK" "$@"; }
trap 'tmux -L "$SOCK" kill-server >/dev/null 2>&1; rm -rf "$T"' EXIT INT TERM
LANG=C.UTF-8
LC_ALL=C.UTF-8
export LANG LC_ALL
unset NO_COLOR TMUX

# start NAME COLS ROWS ARGS...: run dpo-annotate in a new detached session;
# its process id goes to $T/NAME.pid, its exit status to $T/NAME.exit.
start() {
	name=$1 cols=$2 rows=$3
	shift 3
	rm -f "$T/$name.exit" "$T/$name.pid"
	tm new-session -d -s "$name" -x "$cols" -y "$rows" \
		"trap '' INT; sh -c 'echo \$\$ >$T/$name.pid; exec $ANN $*' 2>$T/$name.err; echo \$? >$T/$name.exit; sleep 60" ||
		return 1
}
# signal NAME SIG: send SIG to the dpo-annotate of session NAME.
signal() {
	[ -s "$T/$1.pid" ] && kill -"$2" "$(cat "$T/$1.pid")"
}
screen() { tm capture-pane -p -t "$1"; }
# wait_for NAME TEXT: poll the screen until it shows TEXT (10 s at most).
wait_for() {
	i=0
	while [ $i -lt 200 ]; do
		case "$(screen "$1")" in *"$2"*) return 0 ;; esac
		sleep 0.05
		i=$((i + 1))
	done
	echo "# screen of $1 never showed: $2"
	screen "$1" | sed 's/^/#   | /'
	return 1
}
# wait_exit NAME: wait for the program to end; prints its exit status.
wait_exit() {
	i=0
	while [ $i -lt 200 ] && [ ! -s "$T/$1.exit" ]; do
		sleep 0.05
		i=$((i + 1))
	done
	cat "$T/$1.exit" 2>/dev/null || echo none
}
keys() { n=$1; shift; tm send-keys -t "$n" "$@"; }
q() { sqlite3 "$DB" "$1"; }
votes() { q "SELECT count(*) FROM comparisons c JOIN annotators a ON a.id = c.annotator_id WHERE a.name = '$1'"; }

# no_stray_errors: every dpo-annotate run wrote only its goodbye line to
# stderr (no warnings, no sanitizer reports).
no_stray_errors() {
	is "no errors or sanitizer reports on stderr" \
		"$(cat "$T"/*.err 2>/dev/null | grep -v 'labeled in this session' | head -5)" ""
}
