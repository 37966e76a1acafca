# tap.sh: TAP helpers for dpo's shell integration tests. Source it:
#   . "$top_srcdir/tests/tap.sh"
#   ok "name" cmd args...        passes when cmd exits 0
#   fails "name" cmd args...     passes when cmd exits non-zero
#   is "name" "$got" "$want"     string equality
#   skip_all "reason"            skip the whole script
#   done_testing                 print the plan and exit
# Each script gets a scratch directory $T (removed at exit).
_tap_n=0
_tap_failed=0
# which programs this run tests (the installed ones under `make installcheck`)
echo "# dpo-db: $(command -v dpo-db || echo 'not in PATH')"
T=$(mktemp -d "${TMPDIR:-/tmp}/dpo-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
: "${DPO_SHARED:=${top_srcdir:-.}/../shared}"
export DPO_SHARED

_tap_result() {
	_tap_n=$((_tap_n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $_tap_n - $2"
	else
		echo "not ok $_tap_n - $2"
		_tap_failed=$((_tap_failed + 1))
	fi
}

ok() {
	name=$1; shift
	if "$@" >"$T/.out" 2>"$T/.err"; then _tap_result 0 "$name"
	else
		_tap_result 1 "$name"
		sed 's/^/#   out: /' "$T/.out" | head -20
		sed 's/^/#   err: /' "$T/.err" | head -20
	fi
}

fails() {
	name=$1; shift
	if "$@" >"$T/.out" 2>"$T/.err"; then
		_tap_result 1 "$name (exited 0)"
		sed 's/^/#   out: /' "$T/.out" | head -20
	else _tap_result 0 "$name"
	fi
}

is() {
	if [ "$2" = "$3" ]; then _tap_result 0 "$1"
	else
		_tap_result 1 "$1"
		printf '#   got:  %s\n#   want: %s\n' "$2" "$3"
	fi
}

like() {
	case "$2" in
	*"$3"*) _tap_result 0 "$1" ;;
	*) _tap_result 1 "$1"; printf '#   got:  %s\n#   want to contain: %s\n' "$2" "$3" ;;
	esac
}

skip_all() {
	echo "1..0 # SKIP $1"
	exit 0
}

have_shared() {
	[ -d "$DPO_SHARED/data" ] && [ -d "$DPO_SHARED/fixtures" ]
}

done_testing() {
	echo "1..$_tap_n"
	[ "$_tap_failed" = 0 ]
	exit $?
}
