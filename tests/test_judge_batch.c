/* test_judge_batch.c: the provider batch formats of dpo-judge --batch
 * (judge_batch.h) and the store's batches (store/batches.h). */
#include "config.h"
#include "judge/judge_batch.h"
#include "store/batches.h"
#include "tests/tap.h"
#include <cjson/cJSON.h>

static void test_requests(void)
{
	char cid[JUDGE_BATCH_ID_MAX];
	judge_batch_custom_id(12, 345, 1, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", cid);
	TAP_IS_STR(cid, "c12_345_o1_0123456789abcdef", "custom_id: pair, order, cache key prefix");
	judge_batch_custom_id(INT64_MAX, INT64_MAX - 1, 0,
			      "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", cid);
	TAP_OK(strlen(cid) <= 64, "custom_id of the largest ids fits Anthropic's 64 characters (%zu)", strlen(cid));

	const char *body = "{\"model\":\"m\",\"messages\":[]}";
	util_buf b = UTIL_BUF_INIT;
	judge_batch_request(JUDGE_PROVIDER_OPENAI, "c1_2_o0_x", "/v1/chat/completions", body, strlen(body), &b);
	TAP_IS_STR(util_buf_str(&b),
		   "{\"custom_id\":\"c1_2_o0_x\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":"
		   "{\"model\":\"m\",\"messages\":[]}}\n",
		   "openai: one JSONL line with the body as is");
	util_buf_reset(&b);
	judge_batch_request(JUDGE_PROVIDER_ANTHROPIC, "c1_2_o0_x", NULL, body, strlen(body), &b);
	TAP_IS_STR(util_buf_str(&b), "{\"custom_id\":\"c1_2_o0_x\",\"params\":{\"model\":\"m\",\"messages\":[]}}",
		   "anthropic: a request object with the body as params");
	util_buf_free(&b);
}

static void test_info(void)
{
	judge_batch_info bi;
	char err[256];
	const char *o = "{\"id\":\"batch_1\",\"status\":\"in_progress\",\"output_file_id\":null,"
			"\"request_counts\":{\"total\":10,\"completed\":3,\"failed\":1}}";
	TAP_IS_INT(judge_batch_info_parse(JUDGE_PROVIDER_OPENAI, o, strlen(o), &bi, err, sizeof err), 0,
		   "openai batch object");
	TAP_OK(!strcmp(bi.id, "batch_1") && !bi.ended && bi.total == 10 && bi.succeeded == 3 && bi.failed == 1 &&
		       !bi.output_ref,
	       "openai: id, running, counts");
	judge_batch_info_free(&bi);
	o = "{\"id\":\"batch_1\",\"status\":\"expired\",\"output_file_id\":\"f-o\",\"error_file_id\":\"f-e\"}";
	judge_batch_info_parse(JUDGE_PROVIDER_OPENAI, o, strlen(o), &bi, err, sizeof err);
	TAP_OK(bi.ended && bi.output_ref && !strcmp(bi.output_ref, "f-o") && !strcmp(bi.error_ref, "f-e"),
	       "openai: expired is final; both files");
	judge_batch_info_free(&bi);
	o = "{\"id\":\"msgbatch_1\",\"processing_status\":\"ended\",\"results_url\":\"http://x/r\","
	    "\"request_counts\":{\"processing\":0,\"succeeded\":5,\"errored\":1,\"canceled\":2,\"expired\":3}}";
	judge_batch_info_parse(JUDGE_PROVIDER_ANTHROPIC, o, strlen(o), &bi, err, sizeof err);
	TAP_OK(bi.ended && bi.total == 11 && bi.succeeded == 5 && bi.failed == 6 && !strcmp(bi.output_ref, "http://x/r"),
	       "anthropic: ended, counts summed, results_url");
	judge_batch_info_free(&bi);
	TAP_IS_INT(judge_batch_info_parse(JUDGE_PROVIDER_ANTHROPIC, "{\"id\":\"x\"}", 10, &bi, err, sizeof err),
		   JUDGE_EINVAL, "a batch object without a status is an error");
	TAP_OK(!judge_batch_status_ended(JUDGE_PROVIDER_OPENAI, "finalizing") &&
		       judge_batch_status_ended(JUDGE_PROVIDER_OPENAI, "cancelled") &&
		       !judge_batch_status_ended(JUDGE_PROVIDER_ANTHROPIC, "canceling"),
	       "final statuses");
}

static void test_results(void)
{
	judge_batch_result r;
	char err[256];
	const char *l = "{\"custom_id\":\"a\",\"response\":{\"status_code\":200,\"body\":{\"choices\":[]}},\"error\":null}";
	TAP_IS_INT(judge_batch_result_parse(JUDGE_PROVIDER_OPENAI, l, strlen(l), &r, err, sizeof err), 0, "openai ok line");
	TAP_OK(r.ok && !strcmp(r.custom_id, "a") && !strcmp(r.body, "{\"choices\":[]}"), "openai: the response body");
	judge_batch_result_free(&r);
	l = "{\"custom_id\":\"b\",\"response\":null,\"error\":{\"code\":\"batch_expired\",\"message\":\"late\"}}";
	judge_batch_result_parse(JUDGE_PROVIDER_OPENAI, l, strlen(l), &r, err, sizeof err);
	TAP_IS_STR(r.error, "expired", "openai: batch_expired");
	judge_batch_result_free(&r);
	l = "{\"custom_id\":\"b\",\"response\":{\"status_code\":400,\"body\":{\"error\":{\"message\":\"no\"}}}}";
	judge_batch_result_parse(JUDGE_PROVIDER_OPENAI, l, strlen(l), &r, err, sizeof err);
	TAP_OK(!r.ok && !strcmp(r.error, "HTTP 400: no"), "openai: a request's HTTP error (%s)", r.error);
	judge_batch_result_free(&r);
	l = "{\"custom_id\":\"c\",\"result\":{\"type\":\"errored\",\"error\":{\"type\":\"error\",\"error\":"
	    "{\"type\":\"invalid_request_error\",\"message\":\"bad\"}}}}";
	judge_batch_result_parse(JUDGE_PROVIDER_ANTHROPIC, l, strlen(l), &r, err, sizeof err);
	TAP_IS_STR(r.error, "errored: bad", "anthropic: errored with the message");
	judge_batch_result_free(&r);
	l = "{\"custom_id\":\"c\",\"result\":{\"type\":\"canceled\"}}";
	judge_batch_result_parse(JUDGE_PROVIDER_ANTHROPIC, l, strlen(l), &r, err, sizeof err);
	TAP_IS_STR(r.error, "canceled", "anthropic: canceled");
	judge_batch_result_free(&r);
	l = "{\"custom_id\":\"c\",\"result\":{\"type\":\"succeeded\",\"message\":{\"content\":[]}}}";
	judge_batch_result_parse(JUDGE_PROVIDER_ANTHROPIC, l, strlen(l), &r, err, sizeof err);
	TAP_OK(r.ok && !strcmp(r.body, "{\"content\":[]}"), "anthropic: the message as the body");
	judge_batch_result_free(&r);
	TAP_IS_INT(judge_batch_result_parse(JUDGE_PROVIDER_ANTHROPIC, "{\"result\":{}}", 13, &r, err, sizeof err),
		   JUDGE_EINVAL, "no custom_id: an error");
	TAP_IS_STR(err, "no \"custom_id\"", "... saying so");
	TAP_IS_INT(judge_batch_result_parse(JUDGE_PROVIDER_OPENAI, "{\"custom_id\":\"z\"}", 16, &r, err, sizeof err),
		   JUDGE_EINVAL, "openai: neither response nor error: an error");
	TAP_IS_INT(judge_batch_result_parse(JUDGE_PROVIDER_OPENAI, "{not json", 9, &r, err, sizeof err), JUDGE_EINVAL,
		   "not JSON: an error");
}

/* the store's batches: add, items, update, list, claims that outlive the process */
static int count_batches(void *ud, const store_batch *b)
{
	(void)b;
	(*(int *)ud)++;
	return 0;
}

static int last_item_order(void *ud, const store_batch_item *it)
{
	*(int *)ud = it->order;
	return 0;
}

static void test_store_batches(void)
{
	char *dir = tap_tmpdir("dpo-jbatch");
	char path[512];
	snprintf(path, sizeof path, "%s/b.db", dir);
	store *st = store_new();
	int64_t id = 0, pid, g, c1, c2;
	store_generator gen = {"model", "m", "fp", "{}"};
	TAP_IS_INT(store_open(st, path), STORE_OK, "open a store");
	store_prompt_add(st, "q", NULL, 0, "t", NULL, &pid, NULL);
	store_generator_id(st, &gen, &g);
	store_completion_add(st, pid, "one", g, &c1, NULL);
	store_completion_add(st, pid, "two", g, &c2, NULL);
	store_batch b = {.provider = "openai", .scope = "judge:x", .base_url = "http://h/v1", .status = "submitting"};
	TAP_IS_INT(store_batch_add(st, &b, &id), STORE_OK, "add a batch");
	store_batch_item it = {"c1_2_o0_k", pid, c1, c2, 0, "k"};
	TAP_IS_INT(store_batch_item_add(st, id, &it), STORE_OK, "add a request");
	TAP_OK(store_batch_item_add(st, id, &it) != STORE_OK, "a custom_id twice is refused");
	it.custom_id = "c1_2_o1_k";
	it.order = 1;
	store_batch_item_add(st, id, &it);
	int order = -1, n = 0;
	store_batch_items_foreach(st, id, last_item_order, &order);
	TAP_IS_INT(order, 1, "requests by pair and order");
	store_claim cl = {c1, c2, "judge:x", "judge:x#batch1", 0};
	int got = 0;
	store_claim_try(st, &cl, 1, &got);
	long owned = 0;
	store_batch_claims_live(st, "judge:x#batch1", &owned);
	TAP_IS_INT(owned, 1, "the batch owner's claim is live while this process holds it");
	TAP_IS_INT(store_batch_detach_claims(st, "judge:x#batch1", 3600), STORE_OK, "detach the claims");
	TAP_IS_INT(store_claims_release_all(st, "judge:x#batch1"), STORE_OK, "this process's claims released ...");
	long live = 0;
	store_claims_live(st, "judge:x", &live);
	TAP_IS_INT(live, 1, "... but the detached claim stays live");
	store_claim other = {c1, c2, "judge:x", "judge:x#run2", 0};
	store_claim_try(st, &other, 1, &got);
	TAP_IS_INT(got, 0, "another run of the judge cannot claim the pair");
	b.id = id;
	b.remote_id = "batch_9";
	b.status = "completed";
	b.total = 2;
	b.collected = 1;
	TAP_IS_INT(store_batch_update(st, &b), STORE_OK, "update");
	store_batches_foreach(st, "judge:x", 1, count_batches, &n);
	TAP_IS_INT(n, 0, "a collected batch is not pending");
	store_batches_foreach(st, NULL, 0, count_batches, &n);
	TAP_IS_INT(n, 1, "... but listed");
	TAP_IS_INT(store_batch_release_claims(st, "judge:x#batch1"), STORE_OK, "release the batch's claims");
	store_claim_try(st, &other, 1, &got);
	TAP_IS_INT(got, 1, "then the pair is free");
	b.id = id + 100;
	TAP_IS_INT(store_batch_update(st, &b), STORE_ENOTFOUND, "update of an unknown batch");
	TAP_IS_INT(store_batch_delete(st, id), STORE_OK, "delete");
	n = 0;
	store_batches_foreach(st, NULL, 0, count_batches, &n);
	TAP_IS_INT(n, 0, "deleted");
	store_free(st);
	tap_rmtree(dir);
	free(dir);
}

int main(void)
{
	test_requests();
	test_info();
	test_results();
	test_store_batches();
	return tap_done();
}
