/* store_provenance.c: import runs and their files, the provenance rows of
 * imported records, and the provenance an export shows (provenance.h;
 * taking rows back is store_remove.c). */
#include "config.h"
#include "store/provenance.h"
#include "store/store_int.h"
#include "util/sha256.h"
#include "util/xmalloc.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_file_sha256(const char *path, char hex[65], long long *size)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	static const size_t bufsize = 1 << 16;
	unsigned char *buf = xmalloc(bufsize);
	util_sha256 c;
	long long n = 0;
	size_t got;
	util_sha256_init(&c);
	while ((got = fread(buf, 1, bufsize, f)) > 0) {
		util_sha256_update(&c, buf, got);
		n += (long long)got;
	}
	int err = ferror(f) ? errno : 0;
	fclose(f);
	free(buf);
	if (err) {
		errno = err;
		return -1;
	}
	util_sha256_final_hex(&c, hex);
	*size = n;
	return 0;
}

int store_import_run_begin(store *st, int argc, char **argv, const char *params_json,
			   const store_import_file_info *fi, int64_t *run_id)
{
	int64_t id = 0;
	sqlite3_stmt *s = NULL;
	if (!fi || !fi->path || !fi->source || !fi->split)
		return store__err(st, STORE_EINVAL, "store_import_run_begin: path, source and split are required");
	int rc = store_begin(st);
	if (rc)
		return rc;
	if ((rc = store_run_start(st, "import", argc, argv, params_json, &id)))
		goto out;
	if (!(s = store__prepare(st, "INSERT INTO import_files(run_id, path, size, sha256, source, split) "
				     "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"))) {
		rc = STORE_ERR;
		goto out;
	}
	sqlite3_bind_int64(s, 1, id);
	store__bind_text(s, 2, fi->path);
	if (fi->size >= 0)
		sqlite3_bind_int64(s, 3, fi->size);
	else
		sqlite3_bind_null(s, 3);
	store__bind_text(s, 4, fi->sha256);
	store__bind_text(s, 5, fi->source);
	store__bind_text(s, 6, fi->split);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = store__dberr(st, "record the imported file");
out:
	sqlite3_finalize(s);
	if (rc) {
		char msg[sizeof st->err];
		memcpy(msg, st->err, sizeof msg);
		store_rollback(st);
		store__run_forget(st); /* its row is gone with the transaction */
		memcpy(st->err, msg, sizeof msg);
		return rc;
	}
	if ((rc = store_commit(st))) {
		store__run_forget(st);
		return rc;
	}
	if (run_id)
		*run_id = id;
	return STORE_OK;
}

int store_import_run_file_hash(store *st, int64_t run_id, long long size, const char *sha256)
{
	sqlite3_stmt *s = store__prepare(st, "UPDATE import_files SET size = ?2, sha256 = ?3 WHERE run_id = ?1");
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, run_id);
	sqlite3_bind_int64(s, 2, size);
	store__bind_text(s, 3, sha256);
	int rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, "record the imported file's hash");
	sqlite3_finalize(s);
	return rc;
}

int store_import_run_end(store *st, int64_t run_id, const char *status, const char *format,
			 const char *summary_json)
{
	sqlite3_stmt *s = NULL;
	int rc = store_begin(st);
	if (rc)
		return rc;
	if (format) {
		if (!(s = store__prepare(st, "UPDATE import_files SET format = ?2 WHERE run_id = ?1"))) {
			rc = STORE_ERR;
			goto out;
		}
		sqlite3_bind_int64(s, 1, run_id);
		store__bind_text(s, 2, format);
		if (sqlite3_step(s) != SQLITE_DONE) {
			rc = store__dberr(st, "record the import's format");
			goto out;
		}
	}
	rc = store_run_end(st, run_id, status, summary_json);
out:
	sqlite3_finalize(s);
	return store__tx_end(st, 1, rc);
}

int store_import_files_foreach(store *st, store_import_file_cb cb, void *ud)
{
	sqlite3_stmt *s = store__prepare(st, "SELECT run_id, path, size, sha256, source, split, format "
					     "FROM import_files ORDER BY run_id");
	if (!s)
		return STORE_ERR;
	int step, r = STORE_OK;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		store_import_file_info fi = {
			.path = store__col_text(s, 1),
			.size = sqlite3_column_type(s, 2) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 2),
			.sha256 = store__col_text(s, 3),
			.source = store__col_text(s, 4),
			.split = store__col_text(s, 5),
		};
		if ((r = cb(ud, sqlite3_column_int64(s, 0), &fi, store__col_text(s, 6))))
			break;
	}
	if (!r && step != SQLITE_DONE)
		r = store__dberr(st, "read import files");
	sqlite3_finalize(s);
	return r;
}

/* ---- export metadata -------------------------------------------------------------- */

static void add_str(util_buf *b, const char *s)
{
	util_buf_add_json_string(b, s, strlen(s));
}

static void add_score(util_buf *b, sqlite3_stmt *s, int col)
{
	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		util_buf_adds(b, "null");
	else
		util_buf_addf(b, "%.17g", sqlite3_column_double(s, col));
}

/* A stored verdict (on completion_a vs completion_b) as seen from the pair:
 * "chosen" when it prefers the chosen completion. */
static const char *verdict_side(const char *v, int chosen_is_a)
{
	if (!v)
		return "skip";
	if (!strcmp(v, "a"))
		return chosen_is_a ? "chosen" : "rejected";
	if (!strcmp(v, "b"))
		return chosen_is_a ? "rejected" : "chosen";
	return v;
}

int store_pair_meta(store *st, const store_pair *p, util_buf *b)
{
	int64_t a = p->chosen_id < p->rejected_id ? p->chosen_id : p->rejected_id;
	int64_t bb = p->chosen_id < p->rejected_id ? p->rejected_id : p->chosen_id;
	int chosen_is_a = p->chosen_id == a;
	sqlite3_stmt *s = store__prepare(st, "SELECT a.name, a.kind, c.verdict, c.score_a, c.score_b, c.run_id "
					     "FROM comparisons c JOIN annotators a ON a.id = c.annotator_id "
					     "WHERE c.prompt_id = ?1 AND c.completion_a = ?2 AND c.completion_b = ?3 "
					     "ORDER BY c.id");
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, p->prompt_id);
	sqlite3_bind_int64(s, 2, a);
	sqlite3_bind_int64(s, 3, bb);
	util_buf ann = UTIL_BUF_INIT, score = UTIL_BUF_INIT;
	long votes[5] = {0}; /* chosen, rejected, tie, both_bad, skip */
	int64_t *runs = NULL;
	size_t nruns = 0;
	int step, rc = STORE_OK, have_scores = 0;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		const char *side = verdict_side(store__col_text(s, 2), chosen_is_a);
		static const char *const names[] = {"chosen", "rejected", "tie", "both_bad", "skip"};
		for (int i = 0; i < 5; i++)
			if (!strcmp(side, names[i]))
				votes[i]++;
		int cs = chosen_is_a ? 3 : 4, rs = chosen_is_a ? 4 : 3;
		util_buf_adds(&ann, ann.len ? ", {\"name\": " : "{\"name\": ");
		add_str(&ann, store__col_text(s, 0) ? store__col_text(s, 0) : "");
		util_buf_adds(&ann, ", \"kind\": ");
		add_str(&ann, store__col_text(s, 1) ? store__col_text(s, 1) : "");
		util_buf_adds(&ann, ", \"verdict\": ");
		add_str(&ann, side);
		util_buf_adds(&ann, ", \"score_chosen\": ");
		add_score(&ann, s, cs);
		util_buf_adds(&ann, ", \"score_rejected\": ");
		add_score(&ann, s, rs);
		util_buf_adds(&ann, ", \"run\": ");
		if (sqlite3_column_type(s, 5) == SQLITE_NULL) {
			util_buf_adds(&ann, "null}");
		} else {
			int64_t r = sqlite3_column_int64(s, 5);
			util_buf_addf(&ann, "%lld}", (long long)r);
			size_t i = 0;
			while (i < nruns && runs[i] < r)
				i++;
			if (i == nruns || runs[i] != r) {
				runs = xreallocarray(runs, nruns + 1, sizeof *runs);
				memmove(runs + i + 1, runs + i, (nruns - i) * sizeof *runs);
				runs[i] = r;
				nruns++;
			}
		}
		/* the first comparison that has scores gives the pair's */
		if (!have_scores && sqlite3_column_type(s, 3) != SQLITE_NULL && sqlite3_column_type(s, 4) != SQLITE_NULL) {
			have_scores = 1;
			util_buf_adds(&score, "\"score_chosen\": ");
			add_score(&score, s, cs);
			util_buf_adds(&score, ", \"score_rejected\": ");
			add_score(&score, s, rs);
		}
	}
	if (step != SQLITE_DONE) {
		rc = store__dberr(st, "read the pair's comparisons");
		goto out;
	}
	if (!have_scores)
		util_buf_adds(&score, "\"score_chosen\": null, \"score_rejected\": null");
	util_buf_adds(b, "{\"source\": ");
	add_str(b, p->source ? p->source : "");
	util_buf_addf(b, ", %s, \"votes\": {\"chosen\": %ld, \"rejected\": %ld, \"tie\": %ld, \"both_bad\": %ld, "
		      "\"skip\": %ld}, \"annotators\": [%s], \"runs\": [",
		      util_buf_str(&score), votes[0], votes[1], votes[2], votes[3], votes[4], util_buf_str(&ann));
	for (size_t i = 0; i < nruns; i++)
		util_buf_addf(b, "%s%lld", i ? ", " : "", (long long)runs[i]);
	util_buf_adds(b, "]}");
out:
	sqlite3_finalize(s);
	util_buf_free(&ann);
	util_buf_free(&score);
	free(runs);
	return rc;
}

int store_labelled_prompt_kinds(store *st, const char *split, int *mask)
{
	*mask = 0;
	sqlite3_stmt *s = store__prepare(st, "SELECT DISTINCT p.kind FROM prompts p WHERE (?1 IS NULL OR p.split = ?1) "
					     "AND EXISTS (SELECT 1 FROM comparisons c WHERE c.prompt_id = p.id "
					     "AND (c.verdict = 'a' OR c.verdict = 'b'))");
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, split);
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		const char *k = store__col_text(s, 0);
		*mask |= k && !strcmp(k, "chat") ? 2 : 1;
	}
	int rc = step == SQLITE_DONE ? STORE_OK : store__dberr(st, "read prompt kinds");
	sqlite3_finalize(s);
	return rc;
}
