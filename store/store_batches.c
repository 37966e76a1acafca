/* store_batches.c: the batches of dpo-judge --batch and their requests
 * (batches.h). */
#include "config.h"
#include "store/batches.h"
#include "store/store_int.h"
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

static int need_open(store *st, const char *what)
{
	return st->db ? STORE_OK : store__err(st, STORE_EINVAL, "%s: the store is not open", what);
}

int store_batch_add(store *st, const store_batch *b, int64_t *id)
{
	int rc = need_open(st, "store_batch_add");
	if (rc)
		return rc;
	if (!b || !b->provider || !b->scope || !b->base_url || !b->status)
		return store__err(st, STORE_EINVAL, "store_batch_add: a batch needs a provider, scope, base URL and status");
	sqlite3_stmt *s = store__prepare(st, "INSERT INTO judge_batches(provider, remote_id, scope, base_url, status, "
					     "total, succeeded, failed, output_ref, error_ref, collected, created_at, "
					     "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)");
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, b->provider);
	store__bind_text(s, 2, b->remote_id);
	store__bind_text(s, 3, b->scope);
	store__bind_text(s, 4, b->base_url);
	store__bind_text(s, 5, b->status);
	sqlite3_bind_int64(s, 6, b->total);
	sqlite3_bind_int64(s, 7, b->succeeded);
	sqlite3_bind_int64(s, 8, b->failed);
	store__bind_text(s, 9, b->output_ref);
	store__bind_text(s, 10, b->error_ref);
	sqlite3_bind_int(s, 11, b->collected != 0);
	store__bind_text(s, 12, store__now(st));
	rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, "add batch");
	sqlite3_finalize(s);
	if (rc == STORE_OK && id)
		*id = sqlite3_last_insert_rowid(st->db);
	return rc;
}

int store_batch_item_add(store *st, int64_t batch_id, const store_batch_item *it)
{
	int rc = need_open(st, "store_batch_item_add");
	if (rc)
		return rc;
	if (!it || !it->custom_id || !*it->custom_id || !it->cache_key)
		return store__err(st, STORE_EINVAL, "store_batch_item_add: a request needs a custom_id and a cache key");
	sqlite3_stmt *s = store__prepare(st, "INSERT INTO judge_batch_items(batch_id, custom_id, prompt_id, "
					     "completion_a, completion_b, ord, cache_key) "
					     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, batch_id);
	store__bind_text(s, 2, it->custom_id);
	sqlite3_bind_int64(s, 3, it->prompt_id);
	sqlite3_bind_int64(s, 4, it->completion_a);
	sqlite3_bind_int64(s, 5, it->completion_b);
	sqlite3_bind_int(s, 6, it->order);
	store__bind_text(s, 7, it->cache_key);
	rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, "add batch request");
	sqlite3_finalize(s);
	return rc;
}

int store_batch_update(store *st, const store_batch *b)
{
	int rc = need_open(st, "store_batch_update");
	if (rc)
		return rc;
	if (!b || !b->status)
		return store__err(st, STORE_EINVAL, "store_batch_update: a batch needs a status");
	sqlite3_stmt *s = store__prepare(st, "UPDATE judge_batches SET remote_id = coalesce(?2, remote_id), "
					     "status = ?3, total = ?4, succeeded = ?5, failed = ?6, "
					     "output_ref = coalesce(?7, output_ref), error_ref = coalesce(?8, error_ref), "
					     "collected = ?9, updated_at = ?10 WHERE id = ?1");
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, b->id);
	store__bind_text(s, 2, b->remote_id);
	store__bind_text(s, 3, b->status);
	sqlite3_bind_int64(s, 4, b->total);
	sqlite3_bind_int64(s, 5, b->succeeded);
	sqlite3_bind_int64(s, 6, b->failed);
	store__bind_text(s, 7, b->output_ref);
	store__bind_text(s, 8, b->error_ref);
	sqlite3_bind_int(s, 9, b->collected != 0);
	store__bind_text(s, 10, store__now(st));
	rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, "update batch");
	sqlite3_finalize(s);
	if (rc == STORE_OK && sqlite3_changes(st->db) == 0)
		rc = store__err(st, STORE_ENOTFOUND, "no batch with id %lld", (long long)b->id);
	return rc;
}

int store_batch_delete(store *st, int64_t id)
{
	int rc = need_open(st, "store_batch_delete"), started = 0;
	if (rc || (rc = store__tx_auto(st, &started)))
		return rc;
	static const char *const sql[] = {"DELETE FROM judge_batch_items WHERE batch_id = ?1",
					  "DELETE FROM judge_batches WHERE id = ?1"};
	for (int i = 0; i < 2 && rc == STORE_OK; i++) {
		sqlite3_stmt *s = store__prepare(st, sql[i]);
		if (!s) {
			rc = STORE_ERR;
			break;
		}
		sqlite3_bind_int64(s, 1, id);
		rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, "delete batch");
		sqlite3_finalize(s);
	}
	return store__tx_end(st, started, rc);
}

int store_batches_foreach(store *st, const char *scope, int pending_only, store_batch_cb cb, void *ud)
{
	int rc = need_open(st, "store_batches_foreach");
	if (rc)
		return rc;
	sqlite3_stmt *s = store__prepare(st, "SELECT id, provider, remote_id, scope, base_url, status, total, "
					     "succeeded, failed, output_ref, error_ref, collected, created_at, "
					     "updated_at FROM judge_batches WHERE (?1 IS NULL OR scope = ?1) "
					     "AND (?2 = 0 OR collected = 0) ORDER BY id");
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, scope);
	sqlite3_bind_int(s, 2, pending_only != 0);
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		store_batch b = {
			.id = sqlite3_column_int64(s, 0),
			.provider = store__col_text(s, 1),
			.remote_id = store__col_text(s, 2),
			.scope = store__col_text(s, 3),
			.base_url = store__col_text(s, 4),
			.status = store__col_text(s, 5),
			.total = (long)sqlite3_column_int64(s, 6),
			.succeeded = (long)sqlite3_column_int64(s, 7),
			.failed = (long)sqlite3_column_int64(s, 8),
			.output_ref = store__col_text(s, 9),
			.error_ref = store__col_text(s, 10),
			.collected = sqlite3_column_int(s, 11),
			.created_at = store__col_text(s, 12),
			.updated_at = store__col_text(s, 13),
		};
		if ((rc = cb(ud, &b)))
			break;
	}
	if (!rc && step != SQLITE_DONE)
		rc = store__dberr(st, "read batches");
	sqlite3_finalize(s);
	return rc;
}

int store_batch_items_foreach(store *st, int64_t batch_id, store_batch_item_cb cb, void *ud)
{
	int rc = need_open(st, "store_batch_items_foreach");
	if (rc)
		return rc;
	/* by pair and order: how dpo-judge adds them */
	sqlite3_stmt *s = store__prepare(st, "SELECT custom_id, prompt_id, completion_a, completion_b, ord, cache_key "
					     "FROM judge_batch_items WHERE batch_id = ?1 "
					     "ORDER BY prompt_id, completion_a, completion_b, ord");
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, batch_id);
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		store_batch_item it = {
			.custom_id = store__col_text(s, 0),
			.prompt_id = sqlite3_column_int64(s, 1),
			.completion_a = sqlite3_column_int64(s, 2),
			.completion_b = sqlite3_column_int64(s, 3),
			.order = sqlite3_column_int(s, 4),
			.cache_key = store__col_text(s, 5),
		};
		if ((rc = cb(ud, &it)))
			break;
	}
	if (!rc && step != SQLITE_DONE)
		rc = store__dberr(st, "read batch requests");
	sqlite3_finalize(s);
	return rc;
}

/* Step sql with ?1 = owner and ?2 = t once. */
static int owner_claims(store *st, const char *sql, const char *owner, double t, const char *what)
{
	if (!st->db || !owner || !*owner)
		return store__err(st, STORE_EINVAL, "%s: the store is not open, or no owner", what);
	sqlite3_stmt *s = store__prepare(st, sql);
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, owner);
	sqlite3_bind_double(s, 2, t);
	int rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, what);
	sqlite3_finalize(s);
	return rc;
}

int store_batch_detach_claims(store *st, const char *owner, double ttl_s)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	double until = (double)tv.tv_sec + tv.tv_usec / 1e6 + ttl_s;
	/* no process: store__run_gone never declares such a claim dead */
	return owner_claims(st, "UPDATE claims SET pid = NULL, host = NULL, proc_start = NULL, expires_at = ?2 "
				"WHERE owner = ?1", owner, until, "detach claims");
}

int store_batch_release_claims(store *st, const char *owner)
{
	return owner_claims(st, "DELETE FROM claims WHERE owner = ?1 AND ?2 = ?2", owner, 0, "release claims");
}

int store_batch_claims_live(store *st, const char *owner, long *n)
{
	if (!st->db || !owner || !n)
		return store__err(st, STORE_EINVAL, "store_batch_claims_live: the store is not open, or no owner");
	return store__claims_count_live(st, 1, owner, n);
}
