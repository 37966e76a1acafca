# tests/installcheck.mk: `make installcheck` (and so `make distcheck`) runs
# tests/installcheck.sh, then every shell test of the programs ($(CLI_TESTS)),
# against the installed programs: PATH gets $(DESTDIR)$(bindir) first,
# DPO_DATADIR and DPO_DB are unset (see the script for a staged DESTDIR
# install). The TAP driver of `make check` runs them, so their cases print
# as PASS:/FAIL: lines and land in tests/installcheck.trs and the CLI tests'
# own .trs files, which tests/summary counts; a failed case fails the make
# (its diagnostics print as # lines; any other output of installcheck.sh is
# shown after the cases; the CLI tests' in tests/installed-suite.log). The
# test helpers (check_PROGRAMS) are built first if need be.
EXTRA_DIST += tests/installcheck.sh
CLEANFILES += tests/installcheck.log tests/installcheck.trs tests/installed-suite.log \
	$(CLI_TESTS:.sh=.log) $(CLI_TESTS:.sh=.trs)

installcheck-local:
	@$(MKDIR_P) tests; rm -f tests/installcheck.log tests/installcheck.trs; \
	top_srcdir='$(abs_top_srcdir)' DESTDIR='$(DESTDIR)' bindir='$(bindir)' mandir='$(mandir)' \
	pkgdatadir='$(pkgdatadir)' programs='$(bin_PROGRAMS)' transform='$(transform)' \
	manpages='$(dist_man1_MANS)' \
	datafiles='$(dist_examples_DATA) $(dist_judge_DATA) $(dist_task_DATA)' \
	$(LOG_DRIVER) --test-name tests/installcheck.sh --log-file tests/installcheck.log \
		--trs-file tests/installcheck.trs --color-tests no --expect-failure no --comments \
		-- $(SHELL) $(abs_top_srcdir)/tests/installcheck.sh; \
	if grep -Eq '^:global-test-result: (PASS|SKIP)$$' tests/installcheck.trs 2>/dev/null; then \
		echo "installcheck: $$(grep -c '^:test-result: PASS' tests/installcheck.trs) passed," \
			"$$(grep -c '^:test-result: SKIP' tests/installcheck.trs) skipped"; \
	else \
		grep -Ev '^(ok |not ok |# |(PASS|FAIL|SKIP|ERROR|XPASS|XFAIL): )' tests/installcheck.log; \
		echo "installcheck: FAILED (see tests/installcheck.log)"; exit 1; \
	fi
	@$(MAKE) $(AM_MAKEFLAGS) check-TESTS TESTS='$(CLI_TESTS)' \
		TEST_SUITE_LOG=tests/installed-suite.log dpo_installed=yes
