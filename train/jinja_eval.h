/* jinja_eval.h: the evaluator's context and helpers shared by jinja.c
 * (evaluation) and jinja_lib.c (filters, tests, methods, globals). */
#ifndef DPO_TRAIN_JINJA_EVAL_H
#define DPO_TRAIN_JINJA_EVAL_H
#include <stdarg.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "train/jinja_int.h"

/* nested evaluations (expressions, statements) before it is an error;
 * bounds the C stack */
#define MAX_EVAL_DEPTH 3000

struct jscope {
	jscope *parent;
	jv *vars; /* V_DICT */
};

typedef struct jbuf {
	char *p;
	size_t n, cap;
} jbuf;

typedef struct jctx {
	jinja_arena ar;
	jinja_err e;
	jbuf *out;
	jscope *root, *sc;
	size_t iters, max_iters;
	int edepth, mdepth, max_depth;
	struct tm now;
} jctx;

/* evaluated arguments of a call, filter or test */
typedef struct jargs {
	jv **v;
	size_t n;
	const char **kw;
	size_t *kwlen;
	jv **kwv;
	size_t nkw;
} jargs;

/* A V_LIST made by map, select, reject, selectattr, rejectattr, unique
 * and the items filter is what jinja2 makes there: a generator. It
 * iterates (for, join, first, list, in) but is always true, has no length,
 * no items by index and no JSON, and prints as "<generator object>". */
#define JX_GEN 2
#define JX_IS_GEN(v) ((v)->t == V_LIST && (v)->tuple == JX_GEN)

jv *jx_new(jctx *x, int t);
jv *jx_str(jctx *x, const char *s, size_t n); /* copied */
jv *jx_cstr(jctx *x, const char *s);          /* not copied */
jv *jx_undef(jctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jx_fail_undef(jctx *x, const jv *v) __attribute__((noreturn));
jv *jx_list(jctx *x, size_t cap);
void jx_push(jctx *x, jv *l, jv *item);
jv *jx_dict(jctx *x, int t, size_t cap);
jv *jx_dict_get(const jv *d, const jv *k);
jv *jx_dict_get_s(const jv *d, const char *s, size_t n);
void jx_dict_set(jctx *x, jv *d, jv *k, jv *v);
void jx_dict_append(jctx *x, jv *d, jv *k, jv *v);
const char *jx_type_name(const jv *v);
int jx_truthy(const jv *v);
int jx_eq(const jv *a, const jv *b);
int jx_compare(jctx *x, int op, jv *a, jv *b);
int jx_contains(jctx *x, jv *hay, jv *needle);
jv *jx_getattr(jctx *x, jv *o, const char *s, size_t n);
jv *jx_getitem(jctx *x, jv *o, jv *k);
jv **jx_iter(jctx *x, jv *v, size_t *n);
void jx_count_iterations(jctx *x, size_t n);
jv *jx_call_macro(jctx *x, jv *m, jargs *a, jv *caller);
int jx_ascii(const char *s, size_t n);
size_t *jx_cp_offsets(jctx *x, const jv *v, size_t *ncp);
jv *jx_from_json(jctx *x, const cJSON *j, int depth);

void jb_add(jctx *x, jbuf *b, const char *s, size_t n);
void jb_adds(jctx *x, jbuf *b, const char *s);
void jb_addf(jctx *x, jbuf *b, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
jv *jb_value(jctx *x, jbuf *b);
void jx_float_repr(jctx *x, jbuf *b, double d);
void jx_repr(jctx *x, jbuf *b, const jv *v);
void jx_str_of(jctx *x, jbuf *b, const jv *v);
jv *jx_to_str(jctx *x, jv *v);

/* jinja_lib.c */
#define JX_METHOD_CYCLE 200 /* loop.cycle(...): self is the loop object */
int jinja_method_id(const jv *self, const char *name, size_t n); /* -1: none */
int jinja_global_id(const char *name, size_t n);                 /* -1: none */
jv *jinja_filter(jctx *x, int id, jv *v, jargs *a);
int jinja_test(jctx *x, int id, jv *v, jargs *a);
jv *jinja_call_global(jctx *x, int id, jargs *a);
jv *jinja_call_method(jctx *x, jv *m, jargs *a);

#endif
