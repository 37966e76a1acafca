#!/bin/sh
# setup.sh: set up dpo on a fresh Debian 12 machine and run the main job or the tests.
#
#   ./setup.sh demo          install packages, build, run the end-to-end demo
#   ./setup.sh test          install packages, build, run the whole test suite
#                            (make check: the unit tests, then make install
#                            into build/_inst, the prefix it configures, and
#                            make installcheck: the CLI tests on the installed
#                            programs)
#   ./setup.sh test --asan   the same with AddressSanitizer + UBSan (build-asan/)
#   ./setup.sh deps          only install the Debian packages
#
# Builds out of tree in build/ (build-asan/ for --asan). Needs root or sudo
# for apt-get when packages are missing.
set -eu
cd "$(dirname "$0")"
top=$(pwd)
what=${1:-test}
asan=no
[ "${2:-}" = --asan ] && asan=yes

PKGS="build-essential autoconf automake pkg-config libsqlite3-dev libcjson-dev
libcurl4-openssl-dev libncurses-dev zlib1g-dev libpcre2-dev libutf8proc-dev
libopenblas-dev libopenmpi-dev openmpi-bin python3 sqlite3 tmux"

deps() {
	missing=
	for p in $PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "setup.sh: installing:$missing" >&2
	sudo=
	[ "$(id -u)" = 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
}

build() {
	dir=$1; shift
	[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] || autoreconf -fi >/dev/null
	mkdir -p "$dir"
	if [ ! -f "$dir/config.status" ]; then
		# installs into the build folder (make install needs no root there;
		# ./setup.sh test runs the installed programs from it)
		(cd "$dir" && "$top/configure" -q --prefix="$top/$dir/_inst" "$@")
	fi
	make -C "$dir" -s -j"$(nproc)" >/dev/null
}

case $what in
deps)
	deps ;;
demo)
	deps
	build build
	exec sh "$top/share/demo.sh" "$top/build"
	;;
test)
	deps
	if [ $asan = yes ]; then dir=build-asan; build $dir --enable-asan
	else dir=build; build $dir; fi
	rc=0
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
		make -C "$dir" -s -j"$(nproc)" check >"$dir/check.out" 2>&1 || rc=$?
	grep -E '^(PASS|FAIL|SKIP|ERROR|XPASS|XFAIL)' "$dir/check.out" | grep -v '^PASS' || true
	[ $rc = 0 ] || { tail -n 60 "$dir/check.out"; echo "see $dir/test-suite.log and the tests/*.log files"; }
	# the installed programs: `make install` into $dir/_inst (the prefix
	# build() configures; no root), then `make installcheck`: the CLI
	# tests and tests/installcheck.sh, with DPO_DATADIR unset (counted
	# below; no results of an earlier run are left to count). A build
	# folder configured with another prefix installs staged (DESTDIR).
	ic=0
	rm -rf "$dir/_inst" "$dir/tests/installcheck.trs" "$dir"/tests/cli_*.trs "$dir"/tests/cli_*.log
	stage=
	grep -qx "prefix = $top/$dir/_inst" "$dir/Makefile" || stage="DESTDIR=$top/$dir/_inst"
	{ make -C "$dir" -s install $stage &&
		ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
		make -C "$dir" -s -j"$(nproc)" installcheck $stage; } >"$dir/installcheck.out" 2>&1 || ic=$?
	grep -E '^(FAIL|SKIP|ERROR|XPASS|XFAIL|installcheck:)' "$dir/installcheck.out" || true
	[ $ic = 0 ] || { tail -n 40 "$dir/installcheck.out"
		echo "see $dir/tests/installcheck.log, $dir/tests/installed-suite.log and the tests/cli_*.log files"
		rc=$ic; }
	sh "$top/tests/summary" "$dir"
	exit $rc
	;;
*)
	echo "usage: ./setup.sh demo|test [--asan]|deps" >&2
	exit 2 ;;
esac
