# mpi_lib.sh: what the tests of dpo-train under mpirun share (source it
# after tap.sh): passive OpenMP waits unless set; skips without MPI, mpirun or python3; lets Open MPI run as
# root; mpi NP ARGS... runs `mpirun --oversubscribe -np NP dpo-train ARGS`
# (stderr kept in $T/mpi.err and shown) and fails on a sanitizer report
# about dpo's own code; $cmpr compares two runs (tests/mpi_compare.py).
[ "${DPO_HAVE_MPI:-no}" = yes ] || skip_all "dpo-train was built without MPI (configure --with-mpi)"
command -v mpirun >/dev/null 2>&1 || skip_all "no mpirun (Debian: apt-get install openmpi-bin)"
command -v python3 >/dev/null 2>&1 || skip_all "no python3 to compare the runs"
# ranks share 2 cores: OpenMP threads that finished wait asleep, not spinning
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMP_WAIT_POLICY
# as root Open MPI wants to be told; 2 cores run 3 ranks only oversubscribed
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
# ASan builds: Open MPI keeps allocations until exit, some in plugins it has
# unloaded by then (LeakSanitizer cannot name them). A rank's leak report
# then does not fail the rank (exitcode=0); mpi() fails when the report
# names dpo's own allocations, or on any other sanitizer report.
LSAN_OPTIONS="suppressions=$top_srcdir/tests/data/lsan_mpi.supp:exitcode=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS
mpi() {
	np=$1; shift
	timeout 300 mpirun --oversubscribe -np "$np" "$(command -v dpo-train)" "$@" 2>"$T/mpi.err"
	rc=$?
	cat "$T/mpi.err" >&2
	if grep -Eq 'ERROR: AddressSanitizer|runtime error:' "$T/mpi.err" ||
	   grep -Eq '#[0-9]+ 0x[0-9a-f]+ in (x(malloc|calloc|realloc|reallocarray|strdup|asprintf|vasprintf)|(train|util|store)_[a-z_0-9]+|main) ' "$T/mpi.err"; then
		echo "mpi: a sanitizer report about dpo's own code (above)" >&2
		return 1
	fi
	return $rc
}
cmpr="python3 $top_srcdir/tests/mpi_compare.py"
