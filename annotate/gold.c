/* gold.c: gold items from a file (see gold.h). */
#include "config.h"
#include "annotate/gold.h"
#include "store/import.h"
#include "util/lineread.h"
#include "util/xmalloc.h"
#include <errno.h>
#include <string.h>

/* The store ids of one record's prompt and the two completions of its
 * label: *better, *worse. Returns STORE_OK or a code (message in the store,
 * or in *why for a record that is not one labelled pair). */
static int add_record(store *st, const store_record *r, int64_t *prompt, int64_t *better, int64_t *worse,
		      const char **why)
{
	*why = NULL;
	if (r->nlabels != 1 || r->ncompletions < 2) {
		*why = "a gold item needs one pair with a chosen and a rejected completion";
		return STORE_EINVAL;
	}
	const store_rec_label *l = &r->labels[0];
	if (strcmp(l->verdict, "a") && strcmp(l->verdict, "b")) {
		*why = "a gold item needs a better completion (not a tie or both bad)";
		return STORE_EINVAL;
	}
	int rc = store_prompt_add(st, r->prompt_text, r->prompt_text ? NULL : r->messages,
				  r->prompt_text ? 0 : r->nmessages, "gold", "gold", prompt, NULL);
	int64_t ids[2];
	const int idx[2] = {l->a, l->b};
	for (int i = 0; rc == STORE_OK && i < 2; i++) {
		const store_rec_completion *c = &r->completions[idx[i]];
		store_generator g = {.kind = "import", .name = c->model ? c->model : "gold"};
		int64_t gid;
		rc = store_generator_id(st, &g, &gid);
		if (rc == STORE_OK)
			rc = store_completion_add(st, *prompt, c->text, gid, &ids[i], NULL);
	}
	if (rc != STORE_OK)
		return rc;
	int a_better = !strcmp(l->verdict, "a");
	*better = ids[a_better ? 0 : 1];
	*worse = ids[a_better ? 1 : 0];
	return STORE_OK;
}

int ann_gold_import(store *st, const char *path, long *added, long *known, char **err)
{
	int rc = -1, began = 0;
	long nnew = 0, nold = 0;
	const char *line;
	size_t len;
	store_import_parser *p = store_import_parser_new(STORE_IMPORT_AUTO);
	util_lineread *in = util_lineread_open(path);
	*err = NULL;
	if (!in) {
		*err = xasprintf("%s: %s", path, strerror(errno));
		goto out;
	}
	if (store_begin(st) != STORE_OK) {
		*err = xasprintf("%s: %s", store_path(st), store_errmsg(st));
		goto out;
	}
	began = 1;
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	int r;
	while ((r = util_lineread_next(in, &line, &len)) == 1) {
		long ln = util_lineread_lineno(in);
		size_t k = 0;
		while (k < len && (line[k] == ' ' || line[k] == '\t'))
			k++;
		if (k == len)
			continue;
		store_record rec;
		if (store_import_parse(p, line, len, &rec) != STORE_OK) {
			*err = xasprintf("%s:%ld: %s", path, ln, store_import_parser_errmsg(p));
			goto out;
		}
		int64_t pid, better, worse;
		const char *why;
		int src = add_record(st, &rec, &pid, &better, &worse, &why);
		int created = 0;
		if (src == STORE_OK)
			src = store_gold_add(st, pid, better, worse, base, &created);
		if (src != STORE_OK) {
			*err = xasprintf("%s:%ld: %s", path, ln, why ? why : store_errmsg(st));
			goto out;
		}
		created ? nnew++ : nold++;
	}
	if (r < 0) {
		*err = xasprintf("%s: %s", path, util_lineread_error(in));
		goto out;
	}
	if (nnew + nold == 0) {
		*err = xasprintf("%s: no gold items in the file", path);
		goto out;
	}
	if (store_commit(st) != STORE_OK) {
		*err = xasprintf("%s: %s", store_path(st), store_errmsg(st));
		goto out;
	}
	began = 0;
	if (added)
		*added = nnew;
	if (known)
		*known = nold;
	rc = 0;
out:
	if (began)
		store_rollback(st);
	util_lineread_close(in);
	store_import_parser_free(p);
	return rc;
}
