/* test_provenance.c: unit tests of import runs, provenance rows, store_remove,
 * store_pair_meta and store_labelled_prompt_kinds (store/provenance.h). */
#include "config.h"
#include "store/provenance.h"
#include "store/store.h"
#include "store/store_int.h"
#include "tests/tap.h"
#include "util/buf.h"
#include "util/xmalloc.h"
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/dpo-test-prov.XXXXXX";

/* The first column of the first row of sql on a raw connection, as text
 * (malloc'ed; "" when none). */
static char *sql_text(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	char *v = NULL;
	if (sqlite3_open(path, &db) == SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
		v = xstrdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v ? v : xstrdup("");
}

#define IS_SQL(path, sql, want, ...)                                                      \
	do {                                                                              \
		char *got_ = sql_text((path), (sql));                                     \
		TAP_IS_STR(got_, (want), __VA_ARGS__);                                    \
		free(got_);                                                               \
	} while (0)

/* Import records as one run of source src: a run begun and ended as dpo-db
 * import does, each record at line i + 1 with id ids[i]. */
static int64_t import_run(store *st, const char *src, store_record *recs, size_t n, const char *const *ids)
{
	char *argv[] = {"dpo-db", "import", (char *)src};
	store_import_file_info fi = {.path = src, .size = 10, .sha256 = NULL, .source = src, .split = "train"};
	int64_t run = 0;
	store_import_counts k = {0};
	TAP_IS_INT(store_import_run_begin(st, 3, argv, "{\"format\": \"trl\"}", &fi, &run), STORE_OK,
		   "begin import run %s", src);
	store_begin(st);
	for (size_t i = 0; i < n; i++) {
		recs[i].run_id = run;
		recs[i].line = (long)i + 1;
		recs[i].record_id = ids ? ids[i] : NULL;
		TAP_IS_INT(store_add_record(st, &recs[i], src, NULL, &k), STORE_OK, "%s: record %zu", src, i + 1);
	}
	TAP_IS_INT(store_commit(st), STORE_OK, "%s: commit", src);
	TAP_IS_INT(store_import_run_end(st, run, "ok", "trl", "{\"records\": 2}"), STORE_OK, "end import run %s", src);
	return run;
}

static int count_cb(void *ud, const store_remove_counts *c)
{
	*(store_remove_counts *)ud = *c;
	return 0;
}

static int stop_cb(void *ud, const store_remove_counts *c)
{
	(void)ud;
	(void)c;
	return 7;
}

static void test_runs_and_remove(void)
{
	char *p = xasprintf("%s/prov.db", tmpdir);
	store *st = store_new();
	TAP_IS_INT(store_open(st, p), STORE_OK, "open");

	/* A: P1 (C1 > R1), PA (CA > RA); B: P1 (C1 > X1), PB (CB > RB) */
	store_rec_completion a1[] = {{"C1", NULL}, {"R1", NULL}}, a2[] = {{"CA", NULL}, {"RA", NULL}};
	store_rec_completion b1[] = {{"C1", NULL}, {"X1", NULL}}, b2[] = {{"CB", "model-b"}, {"RB", NULL}};
	store_rec_label lab[] = {{.a = 0, .b = 1, .verdict = "a"}};
	store_record ra[] = {{.prompt_text = "P1", .completions = a1, .ncompletions = 2, .labels = lab, .nlabels = 1},
			     {.prompt_text = "PA", .completions = a2, .ncompletions = 2, .labels = lab, .nlabels = 1}};
	store_record rb[] = {{.prompt_text = "P1", .completions = b1, .ncompletions = 2, .labels = lab, .nlabels = 1},
			     {.prompt_text = "PB", .completions = b2, .ncompletions = 2, .labels = lab, .nlabels = 1}};
	const char *ids[] = {"q7", "q8"};
	int64_t run_a = import_run(st, "A", ra, 2, NULL);
	int64_t run_b = import_run(st, "B", rb, 2, ids);
	TAP_OK(run_a > 0 && run_b > run_a, "two runs: %lld %lld", (long long)run_a, (long long)run_b);

	IS_SQL(p, "SELECT group_concat(kind || ':' || status || ':' || (ended_at IS NOT NULL), ' ') FROM runs",
	       "import:ok:1 import:ok:1", "both runs are imports, ended ok");
	IS_SQL(p, "SELECT group_concat(path || ':' || size || ':' || format || ':' || source || ':' || split, ' ') "
		  "FROM import_files",
	       "A:10:trl:A:train B:10:trl:B:train", "their files");
	IS_SQL(p, "SELECT group_concat(v.line || ':' || v.record_id || ':' || v.created, ' ') FROM provenance v "
		  "WHERE v.kind = 'prompt' AND v.run_id = 2",
	       "1:q7:0 2:q8:1", "B's prompts: lines, ids; P1 found, PB added");
	IS_SQL(p, "SELECT group_concat(run_id, ' ') FROM comparisons", "1 1 2 2", "comparisons carry their run");
	IS_SQL(p, "SELECT count(*) FROM provenance WHERE kind = 'completion' AND created = 0", "1",
	       "C1 was found by B, not added");

	/* errors */
	store_remove_spec none = {0}, two = {.run_id = run_a, .source = "A"}, nosuch = {.run_id = 99},
			  nobody = {.annotator = "nobody"};
	TAP_IS_INT(store_remove(st, &none, 1, NULL, NULL, NULL), STORE_EINVAL, "remove of nothing: EINVAL");
	TAP_IS_INT(store_remove(st, &two, 1, NULL, NULL, NULL), STORE_EINVAL, "remove of two things: EINVAL");
	TAP_IS_INT(store_remove(st, &nosuch, 1, NULL, NULL, NULL), STORE_ENOTFOUND, "remove of no run: ENOTFOUND");
	TAP_IS_INT(store_remove(st, &nobody, 1, NULL, NULL, NULL), STORE_ENOTFOUND,
		   "remove of no annotator: ENOTFOUND");
	store_remove_spec nosrc = {.source = "nowhere"};
	TAP_IS_INT(store_remove(st, &nosrc, 1, NULL, NULL, NULL), STORE_ENOTFOUND, "remove of no source: ENOTFOUND");

	/* a dry run counts and writes nothing; a callback can stop */
	store_remove_spec rm_a = {.run_id = run_a};
	store_remove_counts seen = {0}, got = {0};
	TAP_IS_INT(store_remove(st, &rm_a, 1, count_cb, &seen, &got), STORE_OK, "dry run");
	TAP_OK(got.runs == 1 && got.comparisons == 2 && got.completions == 3 && got.prompts == 1 &&
		       got.annotators == 1 && got.generators == 1 && got.kept_prompts == 1 && got.kept_completions == 1,
	       "dry run counts: %ld runs %ld cmp %ld comp %ld prompts %ld ann %ld gen %ld/%ld kept", got.runs,
	       got.comparisons, got.completions, got.prompts, got.annotators, got.generators, got.kept_prompts,
	       got.kept_completions);
	TAP_OK(!memcmp(&seen, &got, sizeof seen), "the callback heard the same counts");
	IS_SQL(p, "SELECT count(*) FROM comparisons", "4", "dry run: nothing deleted");
	TAP_IS_INT(store_remove(st, &rm_a, 0, stop_cb, NULL, NULL), 7, "a callback's nonzero stops");
	IS_SQL(p, "SELECT count(*) FROM comparisons", "4", "stopped: nothing deleted");

	/* remove A: P1 and C1 stay (B has them) and become B's */
	TAP_IS_INT(store_remove(st, &rm_a, 0, NULL, NULL, &got), STORE_OK, "remove run A");
	IS_SQL(p, "SELECT group_concat(content || ':' || source || ':' || n_completions || ':' || n_labeled_pairs, ' ') "
		  "FROM (SELECT * FROM prompts ORDER BY content)",
	       "P1:B:2:1 PB:B:2:1", "prompts: P1 stays, now B's; counters right");
	IS_SQL(p, "SELECT group_concat(c.text || ':' || g.name, ' ') FROM (SELECT * FROM completions ORDER BY text) c "
		  "JOIN generators g ON g.id = c.generator_id",
	       "C1:B CB:model-b RB:B X1:B", "completions: C1 stays, credited to B");
	IS_SQL(p, "SELECT group_concat(name, ' ') FROM (SELECT name FROM annotators ORDER BY name)", "import:B",
	       "annotator import:A is gone");
	IS_SQL(p, "SELECT group_concat(name, ' ') FROM (SELECT name FROM generators ORDER BY name)", "B model-b",
	       "generator A is gone");
	IS_SQL(p, "SELECT count(*) FROM provenance WHERE run_id = 1", "0", "A's provenance is gone");
	IS_SQL(p, "SELECT count(*) FROM provenance WHERE run_id = 2 AND created = 1", "8",
	       "B has added everything left (2 prompts, 4 completions, 2 comparisons, P1 and C1 included)");
	char *report = NULL;
	TAP_IS_INT(store_check(st, &report), STORE_OK, "store_check passes after remove");
	free(report);

	/* the annotator: labels only */
	store_remove_spec rm_ann = {.annotator = "import:B"};
	TAP_IS_INT(store_remove(st, &rm_ann, 0, NULL, NULL, &got), STORE_OK, "remove annotator import:B");
	TAP_OK(got.comparisons == 2 && got.prompts == 0 && got.completions == 0 && got.annotators == 1,
	       "annotator: %ld comparisons, nothing else", got.comparisons);
	IS_SQL(p, "SELECT sum(n_labeled_pairs) || ' ' || count(*) FROM prompts", "0 2", "prompts stay, unlabelled");
	TAP_IS_INT(store_check(st, &report), STORE_OK, "store_check passes");
	free(report);

	/* the source: prompts and completions of B go too */
	store_remove_spec rm_src = {.source = "B"};
	TAP_IS_INT(store_remove(st, &rm_src, 0, NULL, NULL, &got), STORE_OK, "remove source B");
	TAP_OK(got.runs == 1 && got.prompts == 2 && got.completions == 4, "source: %ld runs %ld prompts %ld completions",
	       got.runs, got.prompts, got.completions);
	IS_SQL(p, "SELECT (SELECT count(*) FROM prompts) + (SELECT count(*) FROM completions) + "
		  "(SELECT count(*) FROM generators) + (SELECT count(*) FROM provenance)",
	       "0", "nothing left");
	IS_SQL(p, "SELECT count(*) FROM runs", "2", "the runs themselves stay");
	store_free(st);
	free(p);
}

static void test_meta_and_kinds(void)
{
	char *p = xasprintf("%s/meta.db", tmpdir);
	store *st = store_new();
	TAP_IS_INT(store_open(st, p), STORE_OK, "open");
	int mask = -1;
	TAP_IS_INT(store_labelled_prompt_kinds(st, NULL, &mask), STORE_OK, "kinds of an empty store");
	TAP_IS_INT(mask, 0, "none");
	/* the rejected completion first, so the chosen one is completion_b */
	store_rec_completion c0[] = {{"worse", NULL}};
	store_record r0 = {.prompt_text = "Q", .completions = c0, .ncompletions = 1};
	store_rec_completion c1[] = {{"better", NULL}, {"worse", NULL}};
	store_rec_label l1[] = {{.a = 0, .b = 1, .verdict = "a", .has_scores = 1, .score_a = 8.5, .score_b = 3.25,
				 .chosen = "a"}};
	store_record r1 = {.prompt_text = "Q", .completions = c1, .ncompletions = 2, .labels = l1, .nlabels = 1};
	int64_t run = import_run(st, "cand", &r0, 1, NULL);
	run = import_run(st, "uf", &r1, 1, NULL);
	store_pair pr = {0};
	pr.prompt_id = 1;
	pr.chosen_id = 2;   /* "better" */
	pr.rejected_id = 1; /* "worse" */
	pr.source = "cand";
	util_buf b = UTIL_BUF_INIT;
	TAP_IS_INT(store_pair_meta(st, &pr, &b), STORE_OK, "pair meta");
	char *want = xasprintf("{\"source\": \"cand\", \"score_chosen\": 8.5, \"score_rejected\": 3.25, \"votes\": "
			       "{\"chosen\": 1, \"rejected\": 0, \"tie\": 0, \"both_bad\": 0, \"skip\": 0}, "
			       "\"annotators\": [{\"name\": \"import:uf\", \"kind\": \"import\", \"verdict\": \"chosen\", "
			       "\"score_chosen\": 8.5, \"score_rejected\": 3.25, \"run\": %lld}], \"runs\": [%lld]}",
			       (long long)run, (long long)run);
	TAP_IS_STR(util_buf_str(&b), want, "scores and verdict mapped to chosen/rejected (chosen is completion_b)");
	free(want);
	util_buf_free(&b);
	TAP_IS_INT(store_labelled_prompt_kinds(st, NULL, &mask), STORE_OK, "kinds");
	TAP_IS_INT(mask, 1, "plain text only");
	store_msg m[] = {{"user", "Hi"}};
	store_rec_completion c2[] = {{"yes", NULL}, {"no", NULL}};
	store_record r2 = {.messages = m, .nmessages = 1, .completions = c2, .ncompletions = 2, .labels = l1,
			   .nlabels = 1};
	import_run(st, "chat", &r2, 1, NULL);
	TAP_IS_INT(store_labelled_prompt_kinds(st, NULL, &mask), STORE_OK, "kinds");
	TAP_IS_INT(mask, 3, "plain text and conversations");
	TAP_IS_INT(store_labelled_prompt_kinds(st, "test", &mask), STORE_OK, "kinds of split test");
	TAP_IS_INT(mask, 0, "none in test");
	store_free(st);
	free(p);
}

static void test_sha(void)
{
	char *p = xasprintf("%s/abc.txt", tmpdir), hex[65];
	FILE *f = fopen(p, "w");
	fputs("abc", f);
	fclose(f);
	long long size = -1;
	TAP_IS_INT(store_file_sha256(p, hex, &size), 0, "hash a file");
	TAP_IS_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "SHA-256 of \"abc\"");
	TAP_IS_INT(size, 3, "its size");
	free(p);
	p = xasprintf("%s/none", tmpdir);
	TAP_IS_INT(store_file_sha256(p, hex, &size), -1, "a missing file: -1");
	free(p);
}

/* One provenance row in the layout of schema 11 (one row per prompt,
 * completion or comparison of a record), the row found by its text (a
 * comparison: by its prompt's text and run). */
static void old_prov(sqlite3 *db, int run, const char *kind, const char *text, int line, const char *rid,
		     int created)
{
	const char *find = !strcmp(kind, "prompt")       ? "SELECT id, NULL AS g FROM prompts WHERE content = ?2"
			   : !strcmp(kind, "completion") ? "SELECT id, generator_id AS g FROM completions WHERE text = ?2"
							 : "SELECT c.id AS id, NULL AS g FROM comparisons c JOIN prompts p "
							   "ON p.id = c.prompt_id WHERE p.content = ?2 AND c.run_id = ?1";
	char *sql = xasprintf("INSERT INTO provenance(run_id, kind, row_id, line, record_id, created, generator_id) "
			      "SELECT ?1, '%s', x.id, ?3, ?4, ?5, x.g FROM (%s) AS x",
			      kind, find);
	sqlite3_stmt *s = NULL;
	int ok = sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK;
	if (ok) {
		sqlite3_bind_int(s, 1, run);
		sqlite3_bind_text(s, 2, text, -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 3, line);
		if (rid)
			sqlite3_bind_text(s, 4, rid, -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 5, created);
		ok = sqlite3_step(s) == SQLITE_DONE && sqlite3_changes(db) == 1;
	}
	TAP_OK(ok, "old provenance row: run %d %s %s", run, kind, text);
	sqlite3_finalize(s);
	free(sql);
}

/* A schema-11 store (provenance one row per row a record referred to)
 * migrates to one row per record, the provenance view reads the same rows,
 * and remove works on it. */
static void test_upgrade(void)
{
	char *p = xasprintf("%s/old11.db", tmpdir);
	store *st = store_new();
	/* 11: the schema provenance came in */
	TAP_IS_INT(store__open_version(st, p, 11), STORE_OK, "build a version-11 store");
	store_rec_completion a1[] = {{"C1", NULL}, {"R1", NULL}}, a2[] = {{"CA", NULL}, {"RA", NULL}};
	store_rec_completion b1[] = {{"C1", NULL}, {"X1", NULL}};
	store_rec_label lab[] = {{.a = 0, .b = 1, .verdict = "a"}};
	store_record ra[] = {{.prompt_text = "P1", .completions = a1, .ncompletions = 2, .labels = lab, .nlabels = 1},
			     {.prompt_text = "PA", .completions = a2, .ncompletions = 2, .labels = lab, .nlabels = 1}};
	store_record rb[] = {{.prompt_text = "P1", .completions = b1, .ncompletions = 2, .labels = lab, .nlabels = 1}};
	store_record *runs[] = {ra, rb};
	size_t nrec[] = {2, 1};
	for (int r = 0; r < 2; r++) {
		char *argv[] = {"dpo-db", "import", r ? "B" : "A"};
		store_import_file_info fi = {.path = argv[2], .size = 1, .source = argv[2], .split = "train"};
		int64_t run = 0;
		store_import_counts k = {0};
		TAP_IS_INT(store_import_run_begin(st, 3, argv, "{}", &fi, &run), STORE_OK, "v11: run %s", argv[2]);
		store_begin(st);
		for (size_t i = 0; i < nrec[r]; i++) {
			store_record rec = runs[r][i];
			rec.run_id = 0; /* provenance written below, in the old layout */
			TAP_IS_INT(store_add_record(st, &rec, argv[2], NULL, &k), STORE_OK, "v11: record");
			TAP_IS_INT(store__exec(st, r ? "UPDATE comparisons SET run_id = 2 WHERE run_id IS NULL"
						    : "UPDATE comparisons SET run_id = 1 WHERE run_id IS NULL"),
				   STORE_OK, "v11: the comparison's run");
		}
		TAP_IS_INT(store_commit(st), STORE_OK, "v11: commit");
		TAP_IS_INT(store_import_run_end(st, run, "ok", "trl", "{}"), STORE_OK, "v11: end run");
	}
	store_free(st);

	sqlite3 *db = NULL;
	TAP_IS_INT(sqlite3_open(p, &db), SQLITE_OK, "open the version-11 file raw");
	old_prov(db, 1, "prompt", "P1", 1, NULL, 1);
	old_prov(db, 1, "completion", "C1", 1, NULL, 1);
	old_prov(db, 1, "completion", "R1", 1, NULL, 1);
	old_prov(db, 1, "comparison", "P1", 1, NULL, 1);
	old_prov(db, 1, "prompt", "PA", 2, NULL, 1);
	old_prov(db, 1, "completion", "CA", 2, NULL, 1);
	old_prov(db, 1, "completion", "RA", 2, NULL, 1);
	old_prov(db, 1, "comparison", "PA", 2, NULL, 1);
	old_prov(db, 2, "prompt", "P1", 1, "q7", 0);
	old_prov(db, 2, "completion", "C1", 1, "q7", 0);
	old_prov(db, 2, "completion", "X1", 1, "q7", 1);
	old_prov(db, 2, "comparison", "P1", 1, "q7", 1);
	/* a row whose record's prompt row is not there */
	old_prov(db, 2, "completion", "X1", 9, "lost", 0);
	sqlite3_close(db);

	static const char rows_sql[] =
		"SELECT group_concat(x, ' ') FROM (SELECT run_id || ':' || kind || ':' || row_id || ':' || line || ':' "
		"|| ifnull(record_id, '-') || ':' || created || ':' || ifnull(generator_id, '-') AS x FROM provenance "
		"ORDER BY run_id, line, kind, row_id)";
	char *before = sql_text(p, rows_sql);
	TAP_OK(strlen(before) > 0, "the old rows: %s", before);

	st = store_new();
	TAP_IS_INT(store_open(st, p), STORE_OK, "the version-11 store migrates");
	IS_SQL(p, rows_sql, before, "the provenance view reads the same rows");
	IS_SQL(p, "SELECT count(*) FROM provenance_records", "4", "one row per record (and one for the lost row)");
	IS_SQL(p, "SELECT type FROM sqlite_schema WHERE name = 'provenance'", "view", "provenance is a view");
	store_remove_spec rm = {.run_id = 1};
	store_remove_counts got = {0};
	TAP_IS_INT(store_remove(st, &rm, 0, NULL, NULL, &got), STORE_OK, "remove run 1 of the migrated store");
	TAP_OK(got.comparisons == 2 && got.prompts == 1 && got.completions == 3 && got.kept_prompts == 1 &&
		       got.kept_completions == 1,
	       "run 1: %ld comparisons, %ld prompt, %ld completions; kept %ld prompt, %ld completion",
	       got.comparisons, got.prompts, got.completions, got.kept_prompts, got.kept_completions);
	IS_SQL(p, rows_sql,
	       "2:comparison:3:1:q7:1:- 2:completion:1:1:q7:1:1 2:completion:5:1:q7:1:2 2:prompt:1:1:q7:1:- "
	       "2:completion:5:9:lost:0:2",
	       "run 2's rows stay; P1 and C1 are its own now");
	char *report = NULL;
	TAP_IS_INT(store_check(st, &report), STORE_OK, "store_check passes");
	free(report);
	store_free(st);
	free(before);
	free(p);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_sha();
	test_runs_and_remove();
	test_meta_and_kinds();
	test_upgrade();
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", tmpdir);
	free(cmd);
	return tap_done();
}
