/* batches.h: provider batches of dpo-judge --batch (store_batches.c).
 *
 * A batch is a set of judge requests handed to a provider's batch API
 * (OpenAI Batch, Anthropic Message Batches) that answers within hours. The
 * store keeps each batch (the provider's id, its status and counts, where
 * its results are) and the requests it holds, so that a later run picks up
 * a pending batch instead of paying for its pairs again. The pairs of a
 * batch are claimed (store_claim_try) by an owner of the batch's own, and
 * store_batch_detach_claims makes those claims outlive the process. */
#ifndef DPO_STORE_BATCHES_H
#define DPO_STORE_BATCHES_H
#include "store/store.h"
#include <stdint.h>

/* One batch. Strings are borrowed (valid during a callback, or for the
 * call that takes them); NULL where unknown. */
typedef struct store_batch {
	int64_t id;             /* the store's id */
	const char *provider;   /* "openai", "anthropic" */
	const char *remote_id;  /* the provider's batch id; NULL until it is created */
	const char *scope;      /* the judge's annotator name */
	const char *base_url;   /* the API base it was sent to */
	const char *status;     /* the provider's status ("in_progress", "ended", ...) */
	long total, succeeded, failed; /* requests: all, answered, failed/expired/canceled */
	const char *output_ref; /* OpenAI: output_file_id; Anthropic: results_url */
	const char *error_ref;  /* OpenAI: error_file_id */
	int collected;          /* its results are in the store (comparisons written) */
	const char *created_at, *updated_at;
} store_batch;

/* One request of a batch. */
typedef struct store_batch_item {
	const char *custom_id;  /* unique within the batch */
	int64_t prompt_id, completion_a, completion_b;
	int order;              /* 0: a shown first, 1: b first (dpo-judge's order) */
	const char *cache_key;  /* the request's cache key (64 hex digits) */
} store_batch_item;

/* Add a batch (b->provider, scope, base_url and status required;
 * remote_id, counts and refs as given; id and times ignored). *id gets
 * its id. Returns STORE_OK, STORE_EINVAL or a database code. */
int store_batch_add(store *st, const store_batch *b, int64_t *id);
/* Add a request to batch batch_id. STORE_EINVAL for a missing field, a
 * database code for a custom_id the batch has already. */
int store_batch_item_add(store *st, int64_t batch_id, const store_batch_item *it);
/* Update batch b->id: remote_id (when not NULL), status, counts, refs
 * (when not NULL) and collected; updated_at is set to now.
 * STORE_ENOTFOUND when there is no such batch. */
int store_batch_update(store *st, const store_batch *b);
/* Delete batch id and its requests (none is fine). */
int store_batch_delete(store *st, int64_t id);

typedef int (*store_batch_cb)(void *ud, const store_batch *b);
typedef int (*store_batch_item_cb)(void *ud, const store_batch_item *it);

/* Visit batches by id: those of scope (NULL: every scope), only those not
 * collected when pending_only. Returns STORE_OK, cb's nonzero value, or
 * a code. */
int store_batches_foreach(store *st, const char *scope, int pending_only, store_batch_cb cb, void *ud);
/* Visit the requests of batch batch_id in the order they were added.
 * Returns STORE_OK, cb's nonzero value, or a code. */
int store_batch_items_foreach(store *st, int64_t batch_id, store_batch_item_cb cb, void *ud);

/* Make owner's claims independent of this process (they stay live across
 * restarts) and expire ttl_s seconds from now. Returns STORE_OK or a code. */
int store_batch_detach_claims(store *st, const char *owner, double ttl_s);
/* Drop every claim of owner, whatever process took it. */
int store_batch_release_claims(store *st, const char *owner);
/* How many of owner's claims are live (not expired, and held by a process
 * that is not seen gone), into *n: a batch still being submitted by
 * another process has some. */
int store_batch_claims_live(store *st, const char *owner, long *n);

#endif
