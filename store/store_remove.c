/* store_remove.c: take back what an import run, a source or an annotator
 * added (store_remove, provenance.h).
 *
 * The work is set-based, in temporary tables of the connection, all inside
 * one write transaction:
 *   rm_runs     the runs taken back
 *   rm_cmp      the comparisons to delete
 *   rm_comp     the completions to delete, rm_prompt the prompts
 *   rs_comp     completions that stay but change hands: the generator the
 *               earliest other run credited (rs_prompt: prompts, that run's
 *               source and split; rs_cmp: comparisons, that run)
 *   others      the candidates that other runs' records have too
 *   rm_ann, rm_gen  annotators and generators left with no rows
 * Counting reads these tables only, so a dry run writes nothing to the
 * database file (temporary tables live apart from it) and rolls back. */
#include "config.h"
#include "store/provenance.h"
#include "store/store_int.h"
#include <stdio.h>
#include <string.h>

/* Statements run in order; ?1 is the run id, ?2 the source, ?3 the
 * annotator name (unused ones are NULL). provenance (a view of
 * provenance_records, one row per record) has no index: it is read by
 * whole scans into temporary tables with keys (rm_* and others), and every
 * other lookup goes through a key of its table. */
static const char *const PLAN[] = {
	"CREATE TEMP TABLE rm_runs(id INTEGER PRIMARY KEY)",
	"CREATE TEMP TABLE rm_cmp(id INTEGER PRIMARY KEY)",
	"CREATE TEMP TABLE rm_comp(id INTEGER PRIMARY KEY)",
	"CREATE TEMP TABLE rm_prompt(id INTEGER PRIMARY KEY)",
	"CREATE TEMP TABLE others(kind TEXT, row_id INTEGER, run INTEGER, gen INTEGER, PRIMARY KEY (kind, row_id))",
	"CREATE TEMP TABLE rs_comp(id INTEGER PRIMARY KEY, old_gen INTEGER, gen INTEGER, run INTEGER)",
	"CREATE TEMP TABLE rs_prompt(id INTEGER PRIMARY KEY, run INTEGER)",
	"CREATE TEMP TABLE rs_cmp(id INTEGER PRIMARY KEY, run INTEGER)",
	"CREATE TEMP TABLE rm_ann(id INTEGER PRIMARY KEY)",
	"CREATE TEMP TABLE rm_gen(id INTEGER PRIMARY KEY)",
	"CREATE TEMP TABLE rm_touched(id INTEGER PRIMARY KEY)",
	/* the runs */
	"INSERT INTO temp.rm_runs SELECT id FROM runs WHERE id = ?1",
	"INSERT OR IGNORE INTO temp.rm_runs SELECT run_id FROM import_files WHERE source = ?2",
	/* candidates. Comparisons: the runs' own, a source's annotator's (also
	 * from before provenance was kept), an annotator's. Completions and
	 * prompts: those the runs' records added; a source's generator's
	 * completions and its prompts. */
	"INSERT OR IGNORE INTO temp.rm_cmp SELECT id FROM comparisons WHERE run_id IN temp.rm_runs",
	"INSERT OR IGNORE INTO temp.rm_cmp SELECT c.id FROM comparisons c JOIN annotators a ON a.id = c.annotator_id "
	"WHERE a.name = 'import:' || ?2 OR a.name = ?3",
	"INSERT OR IGNORE INTO temp.rm_comp SELECT row_id FROM provenance WHERE kind = 'completion' AND created = 1 "
	"AND run_id IN temp.rm_runs",
	"INSERT OR IGNORE INTO temp.rm_comp SELECT c.id FROM completions c JOIN generators g ON g.id = c.generator_id "
	"WHERE g.kind = 'import' AND g.name = ?2",
	"INSERT OR IGNORE INTO temp.rm_prompt SELECT row_id FROM provenance WHERE kind = 'prompt' AND created = 1 "
	"AND run_id IN temp.rm_runs",
	"INSERT OR IGNORE INTO temp.rm_prompt SELECT id FROM prompts WHERE source = ?2",
	/* the candidates other runs' records have too (one scan): the earliest
	 * such run, and the generator it credited */
	"INSERT INTO temp.others SELECT kind, row_id, min(run_id), generator_id FROM provenance "
	"WHERE run_id NOT IN temp.rm_runs AND ((kind = 'comparison' AND ?3 IS NULL AND row_id IN temp.rm_cmp) "
	"OR (kind = 'completion' AND row_id IN temp.rm_comp) OR (kind = 'prompt' AND row_id IN temp.rm_prompt)) "
	"GROUP BY kind, row_id",
	/* those stay, and change hands */
	"INSERT INTO temp.rs_cmp SELECT row_id, run FROM temp.others WHERE kind = 'comparison'",
	"DELETE FROM temp.rm_cmp WHERE id IN (SELECT id FROM temp.rs_cmp)",
	"INSERT INTO temp.rs_comp SELECT o.row_id, c.generator_id, o.gen, o.run FROM temp.others o "
	"JOIN completions c ON c.id = o.row_id WHERE o.kind = 'completion'",
	"DELETE FROM temp.rm_comp WHERE id IN (SELECT id FROM temp.rs_comp)",
	"INSERT INTO temp.rs_prompt SELECT row_id, run FROM temp.others WHERE kind = 'prompt'",
	"DELETE FROM temp.rm_prompt WHERE id IN (SELECT id FROM temp.rs_prompt)",
	/* a completion still compared by a comparison that stays stays */
	"DELETE FROM temp.rm_comp WHERE EXISTS (SELECT 1 FROM completions x JOIN comparisons c "
	"ON c.prompt_id = x.prompt_id WHERE x.id = rm_comp.id AND (c.completion_a = x.id OR c.completion_b = x.id) "
	"AND c.id NOT IN temp.rm_cmp)",
	/* a prompt with a completion or comparison that stays stays */
	"DELETE FROM temp.rm_prompt WHERE EXISTS (SELECT 1 FROM completions c WHERE c.prompt_id = rm_prompt.id "
	"AND c.id NOT IN temp.rm_comp) OR EXISTS (SELECT 1 FROM comparisons c WHERE c.prompt_id = rm_prompt.id "
	"AND c.id NOT IN temp.rm_cmp)",
	/* annotators and generators left with nothing */
	"INSERT OR IGNORE INTO temp.rm_ann SELECT a FROM (SELECT DISTINCT c.annotator_id AS a FROM comparisons c "
	"WHERE c.id IN temp.rm_cmp) WHERE NOT EXISTS (SELECT 1 FROM comparisons o WHERE o.annotator_id = a "
	"AND o.id NOT IN temp.rm_cmp)",
	"INSERT OR IGNORE INTO temp.rm_ann SELECT id FROM annotators WHERE name = ?3 AND NOT EXISTS "
	"(SELECT 1 FROM comparisons o WHERE o.annotator_id = annotators.id AND o.id NOT IN temp.rm_cmp)",
	/* ... but not one whose ratings or binary feedback stay (an
	 * annotator's own are taken back with it, see APPLY) */
	"DELETE FROM temp.rm_ann WHERE id NOT IN (SELECT id FROM annotators WHERE name IS ?3) AND ("
	"EXISTS (SELECT 1 FROM ratings r WHERE r.annotator_id = rm_ann.id AND r.completion_id NOT IN temp.rm_comp "
	"AND r.run_id IS NOT NULL AND r.run_id NOT IN temp.rm_runs) OR EXISTS (SELECT 1 FROM ratings r WHERE "
	"r.annotator_id = rm_ann.id AND r.completion_id NOT IN temp.rm_comp AND r.run_id IS NULL) OR "
	"EXISTS (SELECT 1 FROM feedback f WHERE f.annotator_id = rm_ann.id AND f.completion_id NOT IN temp.rm_comp "
	"AND (f.run_id IS NULL OR f.run_id NOT IN temp.rm_runs)))",
	"INSERT OR IGNORE INTO temp.rm_gen SELECT DISTINCT g FROM (SELECT c.generator_id AS g FROM completions c "
	"WHERE c.id IN temp.rm_comp UNION SELECT old_gen FROM temp.rs_comp WHERE gen IS NOT NULL AND gen <> old_gen) "
	"WHERE NOT EXISTS (SELECT 1 FROM completions o WHERE o.generator_id = g AND o.id NOT IN temp.rm_comp "
	"AND o.id NOT IN (SELECT id FROM temp.rs_comp WHERE gen IS NOT NULL AND gen <> old_gen)) "
	"AND NOT EXISTS (SELECT 1 FROM temp.rs_comp WHERE gen = g)",
	/* the prompts whose counters change */
	"INSERT OR IGNORE INTO temp.rm_touched SELECT prompt_id FROM comparisons WHERE id IN temp.rm_cmp "
	"UNION SELECT prompt_id FROM completions WHERE id IN temp.rm_comp",
	"DELETE FROM temp.rm_touched WHERE id IN temp.rm_prompt",
	NULL,
};

/* An item j of provenance_records.items: its kind as the provenance view
 * names it, and whether its row is deleted. */
#define ITEM_KIND "CASE json_extract(j.value, '$[0]') WHEN 1 THEN 'completion' ELSE 'comparison' END"
#define ITEM_GONE                                                                                        \
	"((json_extract(j.value, '$[0]') = 1 AND json_extract(j.value, '$[1]') IN temp.rm_comp) OR "      \
	"(json_extract(j.value, '$[0]') = 2 AND json_extract(j.value, '$[1]') IN temp.rm_cmp))"

/* Then, unless a dry run: */
static const char *const APPLY[] = {
	/* rows that change hands: a prompt's source and split, a completion's
	 * generator, where they still are the removed run's */
	"UPDATE prompts SET source = (SELECT f.source FROM temp.rs_prompt r JOIN import_files f ON f.run_id = r.run "
	"WHERE r.id = prompts.id) WHERE id IN (SELECT r.id FROM temp.rs_prompt r JOIN import_files f "
	"ON f.run_id = r.run) AND source IN (SELECT source FROM import_files WHERE run_id IN temp.rm_runs)",
	"UPDATE prompts SET split = (SELECT f.split FROM temp.rs_prompt r JOIN import_files f ON f.run_id = r.run "
	"WHERE r.id = prompts.id) WHERE id IN (SELECT r.id FROM temp.rs_prompt r JOIN import_files f "
	"ON f.run_id = r.run) AND split IN (SELECT split FROM import_files WHERE run_id IN temp.rm_runs)",
	"UPDATE completions SET generator_id = (SELECT gen FROM temp.rs_comp r WHERE r.id = completions.id) "
	"WHERE id IN (SELECT id FROM temp.rs_comp WHERE gen IS NOT NULL)",
	/* every generator a completion is credited to (completion_generators):
	 * the new hands', and none of a generator that goes */
	"INSERT OR IGNORE INTO completion_generators(completion_id, generator_id) SELECT id, gen FROM temp.rs_comp "
	"WHERE gen IS NOT NULL",
	"UPDATE comparisons SET run_id = (SELECT run FROM temp.rs_cmp r WHERE r.id = comparisons.id) "
	"WHERE id IN (SELECT id FROM temp.rs_cmp)",
	/* provenance (a view of provenance_records): the kept rows are the
	 * earliest other run's records' now */
	"UPDATE provenance_records SET prompt_created = 1 WHERE (prompt_id, run_id) IN "
	"(SELECT row_id, run FROM temp.others WHERE kind = 'prompt')",
	"UPDATE provenance_records SET items = (SELECT json_group_array(json_set(j.value, '$[2]', "
	"CASE WHEN (" ITEM_KIND ", json_extract(j.value, '$[1]'), provenance_records.run_id) IN "
	"(SELECT kind, row_id, run FROM temp.others) THEN 1 ELSE json_extract(j.value, '$[2]') END)) "
	"FROM json_each(provenance_records.items) j) "
	"WHERE run_id IN (SELECT run FROM temp.others WHERE kind <> 'prompt')",
	/* the deletions */
	"DELETE FROM comparisons WHERE id IN temp.rm_cmp",
	"DELETE FROM completions WHERE id IN temp.rm_comp",
	"DELETE FROM prompts WHERE id IN temp.rm_prompt",
	"DELETE FROM ratings WHERE annotator_id IN (SELECT id FROM annotators WHERE name = ?3) "
	"OR run_id IN temp.rm_runs OR annotator_id IN temp.rm_ann",
	"DELETE FROM feedback WHERE annotator_id IN (SELECT id FROM annotators WHERE name = ?3) "
	"OR run_id IN temp.rm_runs OR annotator_id IN temp.rm_ann",
	"DELETE FROM annotators WHERE id IN temp.rm_ann",
	"DELETE FROM completion_generators WHERE generator_id IN temp.rm_gen",
	"DELETE FROM generators WHERE id IN temp.rm_gen",
	/* provenance: the removed runs' records, and the rows deleted from
	 * other records (a record left with nothing goes) */
	"DELETE FROM provenance_records WHERE run_id IN temp.rm_runs",
	"UPDATE provenance_records SET items = (SELECT json_group_array(json(j.value)) "
	"FROM json_each(provenance_records.items) j WHERE NOT " ITEM_GONE ") "
	"WHERE EXISTS (SELECT 1 FROM json_each(provenance_records.items) j WHERE " ITEM_GONE ")",
	"UPDATE provenance_records SET prompt_id = NULL, prompt_created = 0 WHERE prompt_id IN temp.rm_prompt",
	"DELETE FROM provenance_records WHERE prompt_id IS NULL AND items = '[]'",
	/* the counters, as store_check computes them */
	"UPDATE prompts SET n_completions = " STORE__N_COMPLETIONS_SQL("prompts.id")
	", n_labeled_pairs = " STORE__N_LABELED_PAIRS_SQL("prompts.id") " WHERE id IN temp.rm_touched",
	NULL,
};

static const char *const CLEANUP =
	"DROP TABLE IF EXISTS temp.rm_runs; DROP TABLE IF EXISTS temp.rm_cmp; DROP TABLE IF EXISTS temp.rm_comp; "
	"DROP TABLE IF EXISTS temp.rm_prompt; DROP TABLE IF EXISTS temp.rs_comp; DROP TABLE IF EXISTS temp.rs_prompt; "
	"DROP TABLE IF EXISTS temp.rs_cmp; DROP TABLE IF EXISTS temp.rm_ann; DROP TABLE IF EXISTS temp.rm_gen; "
	"DROP TABLE IF EXISTS temp.rm_touched; DROP TABLE IF EXISTS temp.others;";

/* Run the statements of list with the spec's parameters. */
static int run_list(store *st, const char *const *list, const store_remove_spec *spec)
{
	for (int i = 0; list[i]; i++) {
		sqlite3_stmt *s = store__prepare(st, list[i]);
		if (!s)
			return STORE_ERR;
		if (sqlite3_bind_parameter_count(s) >= 1)
			sqlite3_bind_int64(s, 1, spec->run_id);
		if (sqlite3_bind_parameter_count(s) >= 2)
			store__bind_text(s, 2, spec->source);
		if (sqlite3_bind_parameter_count(s) >= 3)
			store__bind_text(s, 3, spec->annotator);
		int step = sqlite3_step(s);
		sqlite3_finalize(s);
		if (step != SQLITE_DONE)
			return store__dberr(st, "remove");
	}
	return STORE_OK;
}

/* One count(*) into *n. */
static int count_of(store *st, const char *sql, long *n)
{
	sqlite3_stmt *s = store__prepare(st, sql);
	if (!s)
		return STORE_ERR;
	int rc = sqlite3_step(s) == SQLITE_ROW ? STORE_OK : store__dberr(st, "count");
	*n = (long)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc;
}

static int count_all(store *st, store_remove_counts *c)
{
	int rc;
	if ((rc = count_of(st, "SELECT count(*) FROM temp.rm_runs", &c->runs)) ||
	    (rc = count_of(st, "SELECT count(*) FROM temp.rm_cmp", &c->comparisons)) ||
	    (rc = count_of(st, "SELECT count(*) FROM temp.rm_comp", &c->completions)) ||
	    (rc = count_of(st, "SELECT count(*) FROM temp.rm_prompt", &c->prompts)) ||
	    (rc = count_of(st, "SELECT count(*) FROM temp.rm_ann", &c->annotators)) ||
	    (rc = count_of(st, "SELECT count(*) FROM temp.rm_gen", &c->generators)) ||
	    (rc = count_of(st, "SELECT count(DISTINCT row_id) FROM provenance WHERE kind = 'prompt' AND created = 1 "
			       "AND run_id IN temp.rm_runs AND row_id NOT IN temp.rm_prompt", &c->kept_prompts)))
		return rc;
	return count_of(st, "SELECT count(DISTINCT row_id) FROM provenance WHERE kind = 'completion' AND created = 1 "
			    "AND run_id IN temp.rm_runs AND row_id NOT IN temp.rm_comp", &c->kept_completions);
}

/* STORE_OK when the spec names exactly one existing thing. */
static int check_spec(store *st, const store_remove_spec *spec)
{
	int n = (spec->run_id > 0) + (spec->source != NULL) + (spec->annotator != NULL);
	if (n != 1)
		return store__err(st, STORE_EINVAL, "remove: name one run, source or annotator");
	long found = 0;
	sqlite3_stmt *s = store__prepare(st, spec->run_id > 0 ? "SELECT count(*) FROM runs WHERE id = ?1"
					 : spec->annotator ? "SELECT count(*) FROM annotators WHERE name = ?1"
							   : "SELECT EXISTS (SELECT 1 FROM import_files WHERE source = ?1) "
							     "OR EXISTS (SELECT 1 FROM prompts WHERE source = ?1) "
							     "OR EXISTS (SELECT 1 FROM annotators WHERE name = 'import:' || ?1)");
	if (!s)
		return STORE_ERR;
	if (spec->run_id > 0)
		sqlite3_bind_int64(s, 1, spec->run_id);
	else
		store__bind_text(s, 1, spec->annotator ? spec->annotator : spec->source);
	int rc = sqlite3_step(s) == SQLITE_ROW ? STORE_OK : store__dberr(st, "remove");
	found = (long)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (rc)
		return rc;
	if (found)
		return STORE_OK;
	if (spec->run_id > 0)
		return store__err(st, STORE_ENOTFOUND, "no run with id %lld", (long long)spec->run_id);
	if (spec->annotator)
		return store__err(st, STORE_ENOTFOUND, "no annotator \"%s\"", spec->annotator);
	return store__err(st, STORE_ENOTFOUND, "no import of source \"%s\" (no run, prompt or label of it)",
			  spec->source);
	return STORE_OK;
}

int store_remove(store *st, const store_remove_spec *spec, int dry_run, store_remove_cb cb, void *ud,
		 store_remove_counts *out)
{
	store_remove_counts c = {0};
	int rc;
	if (!st->db)
		return store__err(st, STORE_EINVAL, "remove: the store is not open");
	if ((rc = store_begin(st)))
		return rc;
	if ((rc = check_spec(st, spec)) || (rc = run_list(st, PLAN, spec)) || (rc = count_all(st, &c)))
		goto out;
	if (cb && (rc = cb(ud, &c)))
		goto out;
	if (!dry_run)
		rc = run_list(st, APPLY, spec);
out:
	if (rc || dry_run) {
		char msg[sizeof st->err];
		memcpy(msg, st->err, sizeof msg);
		store_rollback(st);
		memcpy(st->err, msg, sizeof msg);
	} else {
		rc = store_commit(st);
	}
	/* a rollback drops temporary tables created in the transaction; a
	 * commit keeps them */
	sqlite3_exec(st->db, CLEANUP, NULL, NULL, NULL);
	if (!rc && out)
		*out = c;
	return rc;
}
