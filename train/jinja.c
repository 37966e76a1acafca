/* jinja.c: values and evaluator of the Jinja interpreter (see jinja.h);
 * the filters, tests, methods and globals are in jinja_lib.c. */
#include "train/jinja.h"
#include "train/jinja_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"
#include "util/xmalloc.h"

static jv v_none = {.t = V_NONE}, v_true = {.t = V_BOOL, .u.i = 1}, v_false = {.t = V_BOOL};

jv *jinja_bool(int b)
{
	return b ? &v_true : &v_false;
}

jv *jinja_none(void)
{
	return &v_none;
}

jv *jinja_int(jinja_arena *a, int64_t i)
{
	jv *v = jinja_alloc(a, sizeof *v);
	v->t = V_INT;
	v->u.i = i;
	return v;
}

jv *jinja_float(jinja_arena *a, double f)
{
	jv *v = jinja_alloc(a, sizeof *v);
	v->t = V_FLOAT;
	v->u.f = f;
	return v;
}

jv *jinja_str_ref(jinja_arena *a, const char *s, size_t n)
{
	jv *v = jinja_alloc(a, sizeof *v);
	v->t = V_STR;
	v->u.s.s = s;
	v->u.s.n = n;
	return v;
}

/* ---- values ---- */

jv *jx_new(jctx *x, int t)
{
	jv *v = jinja_zalloc(&x->ar, sizeof *v);
	v->t = (uint8_t)t;
	return v;
}

jv *jx_str(jctx *x, const char *s, size_t n)
{
	return jinja_str_ref(&x->ar, jinja_strndup(&x->ar, s, n), n);
}

jv *jx_cstr(jctx *x, const char *s)
{
	return jinja_str_ref(&x->ar, s, strlen(s));
}

jv *jx_undef(jctx *x, const char *fmt, ...)
{
	jv *v = jx_new(x, V_UNDEF);
	va_list ap;
	va_start(ap, fmt);
	char *m = xvasprintf(fmt, ap);
	va_end(ap);
	v->u.u.what = jinja_strndup(&x->ar, m, strlen(m));
	free(m);
	return v;
}

/* An undefined attribute (tname set) or name, its message made only when
 * it is used wrongly (names are cut at 60 bytes there). */
static jv *undef_lazy(jctx *x, const char *tname, const char *s, size_t n)
{
	jv *v = jx_new(x, V_UNDEF);
	v->u.u.tname = tname;
	v->u.u.s = s;
	v->u.u.n = n;
	return v;
}

void jx_fail_undef(jctx *x, const jv *v)
{
	int n = (int)(v->u.u.n > 60 ? 60 : v->u.u.n);
	if (v->u.u.what)
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "%s", v->u.u.what);
	if (v->u.u.tname)
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "'%s object' has no attribute '%.*s'",
			   v->u.u.tname, n, v->u.u.s);
	if (v->u.u.s)
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "'%.*s' is undefined", n, v->u.u.s);
	jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "a value is undefined");
}

jv *jx_list(jctx *x, size_t cap)
{
	jv *v = jx_new(x, V_LIST);
	if (cap) {
		v->u.l.a = jinja_alloc(&x->ar, cap * sizeof *v->u.l.a);
		v->u.l.cap = cap;
	}
	return v;
}

void jx_push(jctx *x, jv *l, jv *item)
{
	if (l->u.l.n == l->u.l.cap) {
		size_t cap = l->u.l.cap ? l->u.l.cap * 2 : 4;
		jv **a = jinja_alloc(&x->ar, cap * sizeof *a);
		if (l->u.l.n)
			memcpy(a, l->u.l.a, l->u.l.n * sizeof *a);
		l->u.l.a = a;
		l->u.l.cap = cap;
	}
	l->u.l.a[l->u.l.n++] = item;
}

jv *jx_dict(jctx *x, int t, size_t cap)
{
	jv *v = jx_new(x, t);
	if (cap) {
		v->u.d.k = jinja_alloc(&x->ar, cap * sizeof *v->u.d.k);
		v->u.d.v = jinja_alloc(&x->ar, cap * sizeof *v->u.d.v);
		v->u.d.cap = cap;
	}
	return v;
}

/* Index of the key equal to k in dict d, or -1. */
static long dict_find(const jv *d, const jv *k)
{
	for (size_t i = 0; i < d->u.d.n; i++)
		if (jx_eq(d->u.d.k[i], k))
			return (long)i;
	return -1;
}

jv *jx_dict_get_s(const jv *d, const char *s, size_t n)
{
	for (size_t i = 0; i < d->u.d.n; i++) {
		const jv *k = d->u.d.k[i];
		if (k->t == V_STR && k->u.s.n == n && !memcmp(k->u.s.s, s, n))
			return d->u.d.v[i];
	}
	return NULL;
}

jv *jx_dict_get(const jv *d, const jv *k)
{
	if (k->t == V_STR)
		return jx_dict_get_s(d, k->u.s.s, k->u.s.n);
	long i = dict_find(d, k);
	return i < 0 ? NULL : d->u.d.v[i];
}

/* Append without looking for the key (the caller knows it is new). */
void jx_dict_append(jctx *x, jv *d, jv *k, jv *v)
{
	if (d->u.d.n == d->u.d.cap) {
		size_t cap = d->u.d.cap ? d->u.d.cap * 2 : 4;
		jv **nk = jinja_alloc(&x->ar, cap * sizeof *nk), **nv = jinja_alloc(&x->ar, cap * sizeof *nv);
		if (d->u.d.n) {
			memcpy(nk, d->u.d.k, d->u.d.n * sizeof *nk);
			memcpy(nv, d->u.d.v, d->u.d.n * sizeof *nv);
		}
		d->u.d.k = nk;
		d->u.d.v = nv;
		d->u.d.cap = cap;
	}
	d->u.d.k[d->u.d.n] = k;
	d->u.d.v[d->u.d.n++] = v;
}

void jx_dict_set(jctx *x, jv *d, jv *k, jv *v)
{
	long i = dict_find(d, k);
	if (i >= 0)
		d->u.d.v[i] = v;
	else
		jx_dict_append(x, d, k, v);
}

const char *jx_type_name(const jv *v)
{
	if (JX_IS_GEN(v))
		return "generator";
	static const char *const names[] = {"Undefined", "NoneType", "bool",  "int",
					    "float",     "str",      "list",  "dict",
					    "Namespace", "Macro",    "function", "method"};
	return names[v->t];
}

int jx_truthy(const jv *v)
{
	switch (v->t) {
	case V_UNDEF: case V_NONE: return 0;
	case V_BOOL: case V_INT: return v->u.i != 0;
	case V_FLOAT: return v->u.f != 0;
	case V_STR: return v->u.s.n != 0;
	case V_LIST: return v->u.l.n != 0 || v->tuple == JX_GEN;
	case V_DICT: return v->u.d.n != 0;
	default: return 1;
	}
}

static int is_num(const jv *v)
{
	return v->t == V_BOOL || v->t == V_INT || v->t == V_FLOAT;
}

static double num(const jv *v)
{
	return v->t == V_FLOAT ? v->u.f : (double)v->u.i;
}

int jx_eq(const jv *a, const jv *b)
{
	if (is_num(a) && is_num(b)) {
		if (a->t != V_FLOAT && b->t != V_FLOAT)
			return a->u.i == b->u.i;
		return num(a) == num(b);
	}
	if (a->t != b->t)
		return 0;
	if (JX_IS_GEN(a) || JX_IS_GEN(b))
		return a == b;
	switch (a->t) {
	case V_UNDEF: case V_NONE: return 1;
	case V_STR: return a->u.s.n == b->u.s.n && !memcmp(a->u.s.s, b->u.s.s, a->u.s.n);
	case V_LIST:
		if (a->u.l.n != b->u.l.n)
			return 0;
		for (size_t i = 0; i < a->u.l.n; i++)
			if (!jx_eq(a->u.l.a[i], b->u.l.a[i]))
				return 0;
		return 1;
	case V_DICT:
		if (a->u.d.n != b->u.d.n)
			return 0;
		for (size_t i = 0; i < a->u.d.n; i++) {
			const jv *o = jx_dict_get(b, a->u.d.k[i]);
			if (!o || !jx_eq(a->u.d.v[i], o))
				return 0;
		}
		return 1;
	case V_FUNC: return a->u.fn.id == b->u.fn.id;
	default: return a == b;
	}
}

/* ---- output buffers (in the arena) ---- */

void jb_add(jctx *x, jbuf *b, const char *s, size_t n)
{
	if (!n)
		return;
	if (b->cap - b->n < n + 1) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->n < n + 1) {
			if (cap > ((size_t)-1) / 4)
				jinja_fail(&x->e, TRAIN_JINJA_ELIMIT, "output too large");
			cap *= 2;
		}
		char *p = jinja_alloc(&x->ar, cap);
		if (b->n)
			memcpy(p, b->p, b->n);
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}

void jb_adds(jctx *x, jbuf *b, const char *s)
{
	jb_add(x, b, s, strlen(s));
}

void jb_addf(jctx *x, jbuf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		jb_add(x, b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

jv *jb_value(jctx *x, jbuf *b)
{
	return jinja_str_ref(&x->ar, b->p ? b->p : "", b->n);
}

/* Python's repr of a float (the shortest text that reads back the same). */
void jx_float_repr(jctx *x, jbuf *b, double d)
{
	if (isnan(d)) {
		jb_adds(x, b, "nan");
		return;
	}
	if (isinf(d)) {
		jb_adds(x, b, d < 0 ? "-inf" : "inf");
		return;
	}
	char e[40];
	int prec;
	for (prec = 1; prec <= 17; prec++) {
		snprintf(e, sizeof e, "%.*e", prec - 1, d);
		if (strtod(e, NULL) == d)
			break;
	}
	/* e: [-]D[.DDD]e[+-]XX */
	char digits[24];
	size_t nd = 0;
	const char *p = e;
	int neg = *p == '-';
	if (neg)
		p++;
	for (; *p && *p != 'e'; p++)
		if (*p != '.')
			digits[nd++] = *p;
	int exp = atoi(p + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	if (neg)
		jb_adds(x, b, "-");
	if (exp >= -5 + 1 && exp < 16) {
		if (exp < 0) {
			jb_adds(x, b, "0.");
			for (int k = 0; k < -exp - 1; k++)
				jb_adds(x, b, "0");
			jb_add(x, b, digits, nd);
		} else {
			size_t ip = (size_t)exp + 1;
			for (size_t k = 0; k < ip; k++)
				jb_add(x, b, k < nd ? &digits[k] : "0", 1);
			jb_adds(x, b, ".");
			if (nd > ip)
				jb_add(x, b, digits + ip, nd - ip);
			else
				jb_adds(x, b, "0");
		}
		return;
	}
	jb_add(x, b, digits, 1);
	if (nd > 1) {
		jb_adds(x, b, ".");
		jb_add(x, b, digits + 1, nd - 1);
	}
	jb_addf(x, b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
}

static void str_repr(jctx *x, jbuf *b, const char *s, size_t n)
{
	char q = '\'';
	if (memchr(s, '\'', n) && !memchr(s, '"', n))
		q = '"';
	jb_add(x, b, &q, 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\' || c == (unsigned char)q) {
			jb_adds(x, b, "\\");
			jb_add(x, b, s + i, 1);
		} else if (c == '\n') {
			jb_adds(x, b, "\\n");
		} else if (c == '\r') {
			jb_adds(x, b, "\\r");
		} else if (c == '\t') {
			jb_adds(x, b, "\\t");
		} else if (c < 0x20 || c == 0x7f) {
			jb_addf(x, b, "\\x%02x", c);
		} else {
			jb_add(x, b, s + i, 1);
		}
	}
	jb_add(x, b, &q, 1);
}

void jx_repr(jctx *x, jbuf *b, const jv *v)
{
	switch (v->t) {
	case V_STR:
		str_repr(x, b, v->u.s.s, v->u.s.n);
		return;
	case V_UNDEF:
		jb_adds(x, b, "Undefined");
		return;
	case V_LIST:
		if (v->tuple == JX_GEN) {
			jb_adds(x, b, "<generator object>");
			return;
		}
		jb_adds(x, b, v->tuple ? "(" : "[");
		for (size_t i = 0; i < v->u.l.n; i++) {
			if (i)
				jb_adds(x, b, ", ");
			jx_repr(x, b, v->u.l.a[i]);
		}
		jb_adds(x, b, v->tuple ? (v->u.l.n == 1 ? ",)" : ")") : "]");
		return;
	case V_DICT:
	case V_NS:
		jb_adds(x, b, v->t == V_NS ? "<Namespace {" : "{");
		for (size_t i = 0; i < v->u.d.n; i++) {
			if (i)
				jb_adds(x, b, ", ");
			jx_repr(x, b, v->u.d.k[i]);
			jb_adds(x, b, ": ");
			jx_repr(x, b, v->u.d.v[i]);
		}
		jb_adds(x, b, v->t == V_NS ? "}>" : "}");
		return;
	default:
		jx_str_of(x, b, v);
	}
}

/* str(v) appended to b (undefined prints as nothing) */
void jx_str_of(jctx *x, jbuf *b, const jv *v)
{
	switch (v->t) {
	case V_UNDEF: return;
	case V_NONE: jb_adds(x, b, "None"); return;
	case V_BOOL: jb_adds(x, b, v->u.i ? "True" : "False"); return;
	case V_INT: jb_addf(x, b, "%lld", (long long)v->u.i); return;
	case V_FLOAT: jx_float_repr(x, b, v->u.f); return;
	case V_STR: jb_add(x, b, v->u.s.s, v->u.s.n); return;
	case V_MACRO:
		jb_addf(x, b, "<Macro '%.40s'>", v->u.m.node->s ? v->u.m.node->s : "caller");
		return;
	case V_FUNC: case V_METHOD:
		jb_addf(x, b, "<function %s>", v->u.fn.name ? v->u.fn.name : "");
		return;
	default: jx_repr(x, b, v);
	}
}

jv *jx_to_str(jctx *x, jv *v)
{
	if (v->t == V_STR)
		return v;
	jbuf b = {0};
	jx_str_of(x, &b, v);
	return jb_value(x, &b);
}

/* ---- strings as code points ---- */

int jx_ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 0;
	return 1;
}

/* Byte offsets of the code points of v (a string): *ncp of them plus the
 * end; NULL for ASCII text (offset == index). */
size_t *jx_cp_offsets(jctx *x, const jv *v, size_t *ncp)
{
	const char *s = v->u.s.s;
	size_t n = v->u.s.n;
	if (jx_ascii(s, n)) {
		*ncp = n;
		return NULL;
	}
	size_t *off = jinja_alloc(&x->ar, (n + 1) * sizeof *off), k = 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		int l = util_utf8_decode(s + i, n - i, &cp);
		off[k++] = i;
		i += l > 0 ? (size_t)l : 1;
	}
	off[k] = n;
	*ncp = k;
	return off;
}

/* ---- conversion from JSON ---- */

jv *jx_from_json(jctx *x, const cJSON *j, int depth)
{
	if (depth > 200)
		jinja_fail(&x->e, TRAIN_JINJA_ELIMIT, "variables nested too deeply");
	if (!j || cJSON_IsNull(j))
		return jinja_none();
	if (cJSON_IsBool(j))
		return jinja_bool(cJSON_IsTrue(j));
	if (cJSON_IsNumber(j)) {
		double d = j->valuedouble;
		if (d == floor(d) && fabs(d) < 9007199254740992.0)
			return jinja_int(&x->ar, (int64_t)d);
		return jinja_float(&x->ar, d);
	}
	if (cJSON_IsString(j))
		return jx_cstr(x, j->valuestring);
	if (cJSON_IsArray(j)) {
		jv *l = jx_list(x, (size_t)cJSON_GetArraySize(j));
		for (const cJSON *c = j->child; c; c = c->next)
			jx_push(x, l, jx_from_json(x, c, depth + 1));
		return l;
	}
	if (cJSON_IsObject(j)) {
		jv *d = jx_dict(x, V_DICT, (size_t)cJSON_GetArraySize(j));
		for (const cJSON *c = j->child; c; c = c->next)
			jx_dict_set(x, d, jx_cstr(x, c->string ? c->string : ""),
				    jx_from_json(x, c, depth + 1));
		return d;
	}
	return jinja_none();
}

/* ---- attribute and item access ---- */

jv *jx_getattr(jctx *x, jv *o, const char *s, size_t n)
{
	if (o->t == V_UNDEF)
		jx_fail_undef(x, o);
	int m = jinja_method_id(o, s, n);
	if (m >= 0) {
		jv *f = jx_new(x, V_METHOD);
		f->u.fn.self = o;
		f->u.fn.id = m;
		f->u.fn.name = jinja_strndup(&x->ar, s, n);
		return f;
	}
	if (o->t == V_DICT || o->t == V_NS) {
		jv *r = jx_dict_get_s(o, s, n);
		if (r)
			return r;
		return undef_lazy(x, o->t == V_NS ? "Namespace" : "dict", s, n);
	}
	return undef_lazy(x, jx_type_name(o), s, n);
}

jv *jx_getitem(jctx *x, jv *o, jv *k)
{
	if (o->t == V_UNDEF)
		jx_fail_undef(x, o);
	if (JX_IS_GEN(o)) /* jinja2: obj[k] fails, no attribute either: undefined */
		return undef_lazy(x, "generator", "[]", 2);
	if ((o->t == V_LIST || o->t == V_STR) && (k->t == V_INT || k->t == V_BOOL)) {
		size_t n, *off = NULL;
		if (o->t == V_LIST)
			n = o->u.l.n;
		else
			off = jx_cp_offsets(x, o, &n);
		int64_t i = k->u.i;
		if (i < 0)
			i += (int64_t)n;
		if (i < 0 || (uint64_t)i >= n)
			return jx_undef(x, "%s index %lld out of range", jx_type_name(o),
					(long long)k->u.i);
		if (o->t == V_LIST)
			return o->u.l.a[i];
		size_t a = off ? off[i] : (size_t)i, e = off ? off[i + 1] : (size_t)i + 1;
		return jinja_str_ref(&x->ar, o->u.s.s + a, e - a);
	}
	if (o->t == V_DICT || o->t == V_NS) {
		jv *r = jx_dict_get(o, k);
		if (r)
			return r;
	}
	if (k->t == V_STR && o->t != V_DICT && o->t != V_NS)
		return jx_getattr(x, o, k->u.s.s, k->u.s.n);
	if (k->t == V_STR && jinja_method_id(o, k->u.s.s, k->u.s.n) >= 0)
		return jx_getattr(x, o, k->u.s.s, k->u.s.n);
	jbuf b = {0};
	jx_repr(x, &b, k);
	return jx_undef(x, "'%s object' has no attribute %.60s", jx_type_name(o), b.p ? b.p : "");
}

static int64_t slice_index(jctx *x, const jv *v, int64_t n, int64_t step, int is_start)
{
	if (!v || v->t == V_NONE)
		return step > 0 ? (is_start ? 0 : n) : (is_start ? n - 1 : -1);
	if (v->t != V_INT && v->t != V_BOOL)
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "slice indices must be integers or None");
	int64_t i = v->u.i;
	if (i < 0) {
		i += n;
		if (i < 0)
			i = step < 0 ? -1 : 0;
	} else if (i >= n) {
		i = step < 0 ? n - 1 : n;
	}
	return i;
}

static jv *do_slice(jctx *x, jv *o, jv *a, jv *b, jv *c)
{
	if (o->t == V_UNDEF)
		jx_fail_undef(x, o);
	if ((o->t != V_LIST && o->t != V_STR) || JX_IS_GEN(o)) /* slices are Python's own */
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "'%s' object is not subscriptable",
			   jx_type_name(o));
	int64_t step = 1;
	if (c && c->t != V_NONE) {
		if (c->t != V_INT && c->t != V_BOOL)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "slice indices must be integers or None");
		step = c->u.i;
		if (step == 0)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "slice step cannot be zero");
	}
	size_t n, *off = NULL;
	if (o->t == V_LIST)
		n = o->u.l.n;
	else
		off = jx_cp_offsets(x, o, &n);
	int64_t lo = slice_index(x, a, (int64_t)n, step, 1), hi = slice_index(x, b, (int64_t)n, step, 0);
	if (o->t == V_STR && step == 1) {
		if (hi < lo)
			hi = lo;
		size_t s0 = off ? off[lo] : (size_t)lo, s1 = off ? off[hi] : (size_t)hi;
		return jinja_str_ref(&x->ar, o->u.s.s + s0, s1 - s0);
	}
	jv *l = o->t == V_LIST ? jx_list(x, 0) : NULL;
	jbuf sb = {0};
	for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) {
		if (o->t == V_LIST) {
			jx_push(x, l, o->u.l.a[i]);
		} else {
			size_t s0 = off ? off[i] : (size_t)i, s1 = off ? off[i + 1] : (size_t)i + 1;
			jb_add(x, &sb, o->u.s.s + s0, s1 - s0);
		}
	}
	return l ? l : jb_value(x, &sb);
}

/* ---- scopes ---- */

static jscope *scope_new(jctx *x, jscope *parent)
{
	jscope *s = jinja_alloc(&x->ar, sizeof *s);
	s->parent = parent;
	s->vars = jx_dict(x, V_DICT, 0);
	return s;
}

static jv *lookup(jctx *x, const char *name, size_t n)
{
	for (jscope *s = x->sc; s; s = s->parent) {
		jv *v = jx_dict_get_s(s->vars, name, n);
		if (v)
			return v;
	}
	int g = jinja_global_id(name, n);
	if (g >= 0) {
		jv *f = jx_new(x, V_FUNC);
		f->u.fn.id = g;
		f->u.fn.name = jinja_strndup(&x->ar, name, n);
		return f;
	}
	return undef_lazy(x, NULL, name, n);
}

static void assign(jctx *x, const char *name, size_t n, jv *v)
{
	jx_dict_set(x, x->sc->vars, jinja_str_ref(&x->ar, name, n), v);
}

/* ---- operators ---- */

static void __attribute__((noreturn)) type_error(jctx *x, const char *op, const jv *a, const jv *b)
{
	jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "unsupported operand type(s) for %s: '%s' and '%s'", op,
		   jx_type_name(a), jx_type_name(b));
}

static jv *int_result(jctx *x, int64_t r, int overflow)
{
	if (overflow)
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "integer overflow");
	return jinja_int(&x->ar, r);
}

static jv *repeat(jctx *x, jv *s, int64_t k)
{
	if (s->t == V_LIST) {
		jv *l = jx_list(x, 0);
		for (int64_t i = 0; i < k; i++) {
			jx_count_iterations(x, s->u.l.n);
			for (size_t j = 0; j < s->u.l.n; j++)
				jx_push(x, l, s->u.l.a[j]);
		}
		return l;
	}
	jbuf b = {0};
	for (int64_t i = 0; i < k; i++)
		jb_add(x, &b, s->u.s.s, s->u.s.n);
	return jb_value(x, &b);
}

static jv *arith(jctx *x, int op, jv *a, jv *b)
{
	static const char *const opn[] = {"", "+", "-", "*", "/", "//", "%", "**"};
	if (a->t == V_UNDEF)
		jx_fail_undef(x, a);
	if (b->t == V_UNDEF)
		jx_fail_undef(x, b);
	if (op == OP_ADD && a->t == b->t && (a->t == V_STR || a->t == V_LIST) && !JX_IS_GEN(a) &&
	    !JX_IS_GEN(b)) {
		if (a->t == V_STR) {
			char *s = jinja_alloc(&x->ar, a->u.s.n + b->u.s.n + 1);
			memcpy(s, a->u.s.s, a->u.s.n);
			memcpy(s + a->u.s.n, b->u.s.s, b->u.s.n);
			s[a->u.s.n + b->u.s.n] = 0;
			return jinja_str_ref(&x->ar, s, a->u.s.n + b->u.s.n);
		}
		jv *l = jx_list(x, a->u.l.n + b->u.l.n);
		for (size_t i = 0; i < a->u.l.n; i++)
			jx_push(x, l, a->u.l.a[i]);
		for (size_t i = 0; i < b->u.l.n; i++)
			jx_push(x, l, b->u.l.a[i]);
		return l;
	}
	if (op == OP_MUL && (a->t == V_STR || a->t == V_LIST) && !JX_IS_GEN(a) &&
	    (b->t == V_INT || b->t == V_BOOL))
		return repeat(x, a, b->u.i);
	if (op == OP_MUL && (b->t == V_STR || b->t == V_LIST) && !JX_IS_GEN(b) &&
	    (a->t == V_INT || a->t == V_BOOL))
		return repeat(x, b, a->u.i);
	if (!is_num(a) || !is_num(b))
		type_error(x, opn[op], a, b);
	int ints = a->t != V_FLOAT && b->t != V_FLOAT;
	int64_t i = a->u.i, j = b->u.i, r = 0;
	int ovf;
	double p = num(a), q = num(b);
	switch (op) {
	case OP_ADD:
		if (!ints)
			return jinja_float(&x->ar, p + q);
		ovf = __builtin_add_overflow(i, j, &r);
		return int_result(x, r, ovf);
	case OP_SUB:
		if (!ints)
			return jinja_float(&x->ar, p - q);
		ovf = __builtin_sub_overflow(i, j, &r);
		return int_result(x, r, ovf);
	case OP_MUL:
		if (!ints)
			return jinja_float(&x->ar, p * q);
		ovf = __builtin_mul_overflow(i, j, &r);
		return int_result(x, r, ovf);
	case OP_DIV:
		if (q == 0)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "division by zero");
		return jinja_float(&x->ar, p / q);
	case OP_FLOORDIV:
	case OP_MOD:
		if (q == 0)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "division by zero");
		if (ints) {
			if (i == INT64_MIN && j == -1)
				return int_result(x, 0, 1);
			int64_t d = i / j, m = i % j;
			if (m && ((m < 0) != (j < 0))) {
				d--;
				m += j;
			}
			return jinja_int(&x->ar, op == OP_MOD ? m : d);
		} else {
			double m = fmod(p, q);
			if (m && ((m < 0) != (q < 0)))
				m += q;
			return jinja_float(&x->ar, op == OP_MOD ? m : floor(p / q));
		}
	case OP_POW:
		if (ints && j >= 0) {
			int64_t base = i, acc = 1;
			for (int64_t e = j; e; e >>= 1) {
				if ((e & 1) && __builtin_mul_overflow(acc, base, &acc))
					return int_result(x, 0, 1);
				if ((e >> 1) && __builtin_mul_overflow(base, base, &base))
					return int_result(x, 0, 1);
			}
			return jinja_int(&x->ar, acc);
		}
		return jinja_float(&x->ar, pow(p, q));
	}
	type_error(x, opn[op], a, b);
}

/* a OP b for < <= > >=: numbers, strings, lists */
static int order(jctx *x, const jv *a, const jv *b)
{
	if (a->t == V_UNDEF)
		jx_fail_undef(x, a);
	if (b->t == V_UNDEF)
		jx_fail_undef(x, b);
	if (is_num(a) && is_num(b)) {
		double p = num(a), q = num(b);
		if (a->t != V_FLOAT && b->t != V_FLOAT)
			return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
		return p < q ? -1 : p > q;
	}
	if (a->t == V_STR && b->t == V_STR) {
		size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
		int c = n ? memcmp(a->u.s.s, b->u.s.s, n) : 0;
		if (c)
			return c < 0 ? -1 : 1;
		return a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n;
	}
	if (a->t == V_LIST && b->t == V_LIST && !JX_IS_GEN(a) && !JX_IS_GEN(b)) {
		for (size_t i = 0; i < a->u.l.n && i < b->u.l.n; i++) {
			if (!jx_eq(a->u.l.a[i], b->u.l.a[i]))
				return order(x, a->u.l.a[i], b->u.l.a[i]);
		}
		return a->u.l.n < b->u.l.n ? -1 : a->u.l.n > b->u.l.n;
	}
	jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "'<' not supported between instances of '%s' and '%s'",
		   jx_type_name(a), jx_type_name(b));
}

int jx_contains(jctx *x, jv *hay, jv *needle)
{
	switch (hay->t) {
	case V_UNDEF:
		return 0;
	case V_STR:
		if (needle->t == V_UNDEF)
			jx_fail_undef(x, needle);
		if (needle->t != V_STR)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER,
				   "'in <string>' requires string as left operand, not %s",
				   jx_type_name(needle));
		if (!needle->u.s.n)
			return 1;
		return memmem(hay->u.s.s, hay->u.s.n, needle->u.s.s, needle->u.s.n) != NULL;
	case V_LIST:
		for (size_t i = 0; i < hay->u.l.n; i++)
			if (jx_eq(hay->u.l.a[i], needle))
				return 1;
		return 0;
	case V_DICT:
	case V_NS:
		return jx_dict_get(hay, needle) != NULL;
	default:
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "argument of type '%s' is not iterable",
			   jx_type_name(hay));
	}
}

int jx_compare(jctx *x, int op, jv *a, jv *b)
{
	switch (op) {
	case OP_EQ: return jx_eq(a, b);
	case OP_NE: return !jx_eq(a, b);
	case OP_LT: return order(x, a, b) < 0;
	case OP_LE: return order(x, a, b) <= 0;
	case OP_GT: return order(x, a, b) > 0;
	case OP_GE: return order(x, a, b) >= 0;
	case OP_IN: return jx_contains(x, b, a);
	case OP_NOTIN: return !jx_contains(x, b, a);
	}
	return 0;
}

/* ---- iteration ---- */

void jx_count_iterations(jctx *x, size_t n)
{
	x->iters += n;
	if (x->iters > x->max_iters)
		jinja_fail(&x->e, TRAIN_JINJA_ELIMIT, "more than %zu loop iterations", x->max_iters);
}

/* The items a for loop over v sees (a fresh or unchanging array). */
jv **jx_iter(jctx *x, jv *v, size_t *n)
{
	switch (v->t) {
	case V_UNDEF:
		*n = 0;
		return NULL;
	case V_LIST:
		*n = v->u.l.n;
		return v->u.l.a;
	case V_DICT:
	case V_NS: {
		*n = v->u.d.n;
		jv **a = jinja_alloc(&x->ar, (*n + 1) * sizeof *a);
		if (*n)
			memcpy(a, v->u.d.k, *n * sizeof *a);
		return a;
	}
	case V_STR: {
		size_t ncp, *off = jx_cp_offsets(x, v, &ncp);
		jv **a = jinja_alloc(&x->ar, (ncp + 1) * sizeof *a);
		for (size_t i = 0; i < ncp; i++) {
			size_t s0 = off ? off[i] : i, s1 = off ? off[i + 1] : i + 1;
			a[i] = jinja_str_ref(&x->ar, v->u.s.s + s0, s1 - s0);
		}
		*n = ncp;
		return a;
	}
	default:
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "'%s' object is not iterable", jx_type_name(v));
	}
}

/* ---- evaluation ---- */

static void enter(jctx *x, int line)
{
	x->e.line = line;
	if (++x->edepth > MAX_EVAL_DEPTH)
		jinja_fail(&x->e, TRAIN_JINJA_ELIMIT, "template nested too deeply (recursion)");
}

static jv *jx_eval(jctx *x, const jnode *n);

static jv *eval_cmp(jctx *x, const jnode *n)
{
	jv *l = jx_eval(x, n->kids[0]);
	for (size_t i = 1; i < n->nk; i++) {
		jv *r = jx_eval(x, n->kids[i]);
		if (!jx_compare(x, n->ops[i - 1], l, r))
			return jinja_bool(0);
		l = r;
	}
	return jinja_bool(1);
}

/* Evaluate the arguments of a call, filter or test node into a. */
static void jx_eval_args(jctx *x, const jnode *n, jargs *a)
{
	a->n = n->nk;
	a->v = jinja_alloc(&x->ar, (n->nk + 1) * sizeof *a->v);
	for (size_t i = 0; i < n->nk; i++)
		a->v[i] = jx_eval(x, n->kids[i]);
	a->nkw = n->nn;
	a->kw = n->names;
	a->kwlen = n->namelens;
	a->kwv = jinja_alloc(&x->ar, (n->nn + 1) * sizeof *a->kwv);
	for (size_t i = 0; i < n->nn; i++)
		a->kwv[i] = jx_eval(x, n->vals[i]);
}

static jv *eval_call(jctx *x, const jnode *n, jv *caller)
{
	jv *f = jx_eval(x, n->a);
	jargs a;
	jx_eval_args(x, n, &a);
	x->e.line = n->line;
	switch (f->t) {
	case V_MACRO:
		return jx_call_macro(x, f, &a, caller);
	case V_FUNC:
		return jinja_call_global(x, f->u.fn.id, &a);
	case V_METHOD:
		return jinja_call_method(x, f, &a);
	case V_UNDEF:
		jx_fail_undef(x, f);
	default:
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "'%s' object is not callable", jx_type_name(f));
	}
}

static jv *eval_seq(jctx *x, const jnode *n)
{
	if (n->kind == N_LIST) {
		jv *l = jx_list(x, n->nk);
		l->tuple = n->neg;
		for (size_t i = 0; i < n->nk; i++)
			jx_push(x, l, jx_eval(x, n->kids[i]));
		return l;
	}
	jv *d = jx_dict(x, V_DICT, n->nk / 2);
	for (size_t i = 0; i + 1 < n->nk; i += 2) {
		jv *k = jx_eval(x, n->kids[i]);
		if (k->t == V_LIST || k->t == V_DICT || k->t == V_NS || k->t == V_UNDEF)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "unhashable type: '%s'", jx_type_name(k));
		jx_dict_set(x, d, k, jx_eval(x, n->kids[i + 1]));
	}
	return d;
}

static jv *eval_inner(jctx *x, const jnode *n)
{
	jv *a, *b;
	switch (n->kind) {
	case N_LIT: return n->lit;
	case N_NAME: return lookup(x, n->s, n->sn);
	case N_ATTR: return jx_getattr(x, jx_eval(x, n->a), n->s, n->sn);
	case N_ITEM:
		a = jx_eval(x, n->a);
		return jx_getitem(x, a, jx_eval(x, n->b));
	case N_SLICE: {
		a = jx_eval(x, n->a);
		jv *p[3];
		for (int k = 0; k < 3; k++)
			p[k] = n->kids[k] ? jx_eval(x, n->kids[k]) : NULL;
		return do_slice(x, a, p[0], p[1], p[2]);
	}
	case N_CALL: return eval_call(x, n, NULL);
	case N_FILTER: {
		a = jx_eval(x, n->a);
		jargs args;
		jx_eval_args(x, n, &args);
		x->e.line = n->line;
		return jinja_filter(x, n->op, a, &args);
	}
	case N_TEST: {
		a = jx_eval(x, n->a);
		jargs args;
		jx_eval_args(x, n, &args);
		x->e.line = n->line;
		return jinja_bool(jinja_test(x, n->op, a, &args) != n->neg);
	}
	case N_NEG:
	case N_POS:
		a = jx_eval(x, n->a);
		if (a->t == V_UNDEF)
			jx_fail_undef(x, a);
		if (!is_num(a))
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "bad operand type for unary %c: '%s'",
				   n->kind == N_NEG ? '-' : '+', jx_type_name(a));
		if (n->kind == N_POS)
			return a->t == V_BOOL ? jinja_int(&x->ar, a->u.i) : a;
		if (a->t == V_FLOAT)
			return jinja_float(&x->ar, -a->u.f);
		return int_result(x, -a->u.i, a->u.i == INT64_MIN);
	case N_NOT: return jinja_bool(!jx_truthy(jx_eval(x, n->a)));
	case N_AND:
		a = jx_eval(x, n->a);
		return jx_truthy(a) ? jx_eval(x, n->b) : a;
	case N_OR:
		a = jx_eval(x, n->a);
		return jx_truthy(a) ? a : jx_eval(x, n->b);
	case N_BIN:
		a = jx_eval(x, n->a);
		b = jx_eval(x, n->b);
		x->e.line = n->line;
		if (n->op == OP_CONCAT) {
			jbuf s = {0};
			jx_str_of(x, &s, a);
			jx_str_of(x, &s, b);
			return jb_value(x, &s);
		}
		return arith(x, n->op, a, b);
	case N_CMP: return eval_cmp(x, n);
	case N_COND:
		if (jx_truthy(jx_eval(x, n->a)))
			return jx_eval(x, n->b);
		if (n->c)
			return jx_eval(x, n->c);
		return jx_undef(x, "the inline if-expression on line %d evaluated to false and no else "
				   "section was defined", n->line);
	case N_LIST:
	case N_DICT: return eval_seq(x, n);
	}
	jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "not an expression");
}

static jv *jx_eval(jctx *x, const jnode *n)
{
	enter(x, n->line);
	jv *v = eval_inner(x, n);
	x->edepth--;
	return v;
}

/* ---- statements ---- */

enum { FLOW_NEXT, FLOW_BREAK, FLOW_CONTINUE };

static int exec_node(jctx *x, const jnode *n);

static int exec_body(jctx *x, const jnode *body)
{
	for (size_t i = 0; i < body->nk; i++) {
		int f = exec_node(x, body->kids[i]);
		if (f != FLOW_NEXT)
			return f;
	}
	return FLOW_NEXT;
}

static void bind_targets(jctx *x, const jnode *n, jv *item)
{
	if (n->nn == 1) {
		assign(x, n->names[0], n->namelens[0], item);
		return;
	}
	size_t cnt;
	jv **it = jx_iter(x, item, &cnt);
	if (cnt != n->nn)
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "cannot unpack %zu values into %zu names", cnt,
			   n->nn);
	for (size_t i = 0; i < cnt; i++)
		assign(x, n->names[i], n->namelens[i], it[i]);
}

static jv *loop_object(jctx *x, jv **items, size_t i, size_t n)
{
	static jv keys[12] = {
#define K(S) {.t = V_STR, .u.s = {S, sizeof S - 1}}
		K("index"), K("index0"), K("revindex"), K("revindex0"), K("first"), K("last"),
		K("length"), K("previtem"), K("nextitem"), K("depth"), K("depth0"), K("cycle"),
#undef K
	};
	static jv no_prev = {.t = V_UNDEF, .u.u = {"there is no previous item", NULL, NULL, 0}},
		  no_next = {.t = V_UNDEF, .u.u = {"there is no next item", NULL, NULL, 0}};
	jv *d = jx_dict(x, V_DICT, 12);
	jv *num = jinja_alloc(&x->ar, 8 * sizeof *num);
	int64_t nv[8] = {(int64_t)i + 1, (int64_t)i, (int64_t)(n - i), (int64_t)(n - i - 1), (int64_t)n,
			 1, 0, 0};
	for (int k = 0; k < 8; k++) {
		num[k].t = V_INT;
		num[k].u.i = nv[k];
	}
	jv *vals[11] = {
		&num[0], &num[1], &num[2], &num[3], jinja_bool(i == 0), jinja_bool(i + 1 == n), &num[4],
		i ? items[i - 1] : &no_prev, i + 1 < n ? items[i + 1] : &no_next,
		&num[5], &num[6],
	};
	for (int k = 0; k < 11; k++)
		jx_dict_append(x, d, &keys[k], vals[k]);
	jv *cycle = jx_new(x, V_METHOD);
	cycle->u.fn.self = d;
	cycle->u.fn.id = JX_METHOD_CYCLE;
	cycle->u.fn.name = "cycle";
	jx_dict_append(x, d, &keys[11], cycle);
	return d;
}

static int exec_for(jctx *x, const jnode *n)
{
	jv *seq = jx_eval(x, n->a);
	size_t cnt;
	jv **items = jx_iter(x, seq, &cnt);
	jscope *outer = x->sc;
	if (n->b) { /* the loop's `if` filter */
		jv **kept = jinja_alloc(&x->ar, (cnt + 1) * sizeof *kept);
		size_t nk = 0;
		for (size_t i = 0; i < cnt; i++) {
			jx_count_iterations(x, 1);
			x->sc = scope_new(x, outer);
			bind_targets(x, n, items[i]);
			if (jx_truthy(jx_eval(x, n->b)))
				kept[nk++] = items[i];
		}
		x->sc = outer;
		items = kept;
		cnt = nk;
	}
	if (!cnt) {
		int f = n->d ? exec_body(x, n->d) : FLOW_NEXT;
		return f;
	}
	for (size_t i = 0; i < cnt; i++) {
		jx_count_iterations(x, 1);
		x->sc = scope_new(x, outer);
		assign(x, "loop", 4, loop_object(x, items, i, cnt));
		bind_targets(x, n, items[i]);
		int f = exec_body(x, n->c);
		x->sc = outer;
		if (f == FLOW_BREAK)
			break;
	}
	return FLOW_NEXT;
}

jv *jx_call_macro(jctx *x, jv *m, jargs *a, jv *caller)
{
	const jnode *def = m->u.m.node;
	const char *mname = def->kind == N_MACRO ? def->s : "caller";
	if (a->n > def->nn)
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "macro '%s' takes not more than %zu argument(s)",
			   mname, def->nn);
	if (++x->mdepth > x->max_depth)
		jinja_fail(&x->e, TRAIN_JINJA_ELIMIT, "macro calls nested more than %d deep",
			   x->max_depth);
	jscope *saved = x->sc;
	jbuf *saved_out = x->out;
	x->sc = scope_new(x, m->u.m.closure);
	for (size_t k = 0; k < a->nkw; k++) {
		size_t p;
		for (p = 0; p < def->nn; p++)
			if (def->namelens[p] == a->kwlen[k] && !memcmp(def->names[p], a->kw[k], a->kwlen[k]))
				break;
		if (p == def->nn || p < a->n)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "macro '%s' got an unexpected argument '%s'",
				   mname, a->kw[k]);
	}
	for (size_t p = 0; p < def->nn; p++) {
		jv *v = NULL;
		if (p < a->n)
			v = a->v[p];
		for (size_t k = 0; !v && k < a->nkw; k++)
			if (def->namelens[p] == a->kwlen[k] && !memcmp(def->names[p], a->kw[k], a->kwlen[k]))
				v = a->kwv[k];
		if (!v && def->vals[p])
			v = jx_eval(x, def->vals[p]);
		if (!v)
			v = jx_undef(x, "parameter '%s' was not provided", def->names[p]);
		assign(x, def->names[p], def->namelens[p], v);
	}
	if (caller)
		assign(x, "caller", 6, caller);
	jbuf out = {0};
	x->out = &out;
	exec_body(x, def->b);
	x->out = saved_out;
	x->sc = saved;
	x->mdepth--;
	return jb_value(x, &out);
}

static int exec_set(jctx *x, const jnode *n)
{
	jv *v;
	if (n->kind == N_SETBLOCK) {
		jbuf *saved = x->out;
		jbuf b = {0};
		x->out = &b;
		exec_body(x, n->b);
		x->out = saved;
		v = jb_value(x, &b);
	} else {
		v = jx_eval(x, n->a);
	}
	x->e.line = n->line;
	if (n->neg) { /* ns.attr = v */
		jv *ns = lookup(x, n->names[0], n->namelens[0]);
		if (ns->t != V_NS)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "cannot assign attribute on non-namespace object");
		jx_dict_set(x, ns, jinja_str_ref(&x->ar, n->names[1], n->namelens[1]), v);
	} else if (n->nn == 1) {
		assign(x, n->names[0], n->namelens[0], v);
	} else {
		bind_targets(x, n, v);
	}
	return FLOW_NEXT;
}

static int exec_node(jctx *x, const jnode *n)
{
	enter(x, n->line);
	int f = FLOW_NEXT;
	switch (n->kind) {
	case N_BODY:
		f = exec_body(x, n);
		break;
	case N_TEXT:
		jb_add(x, x->out, n->s, n->sn);
		break;
	case N_OUT: {
		jv *v = jx_eval(x, n->a);
		jx_str_of(x, x->out, v);
		break;
	}
	case N_IF:
		if (jx_truthy(jx_eval(x, n->a)))
			f = exec_body(x, n->b);
		else if (n->c)
			f = n->c->kind == N_IF ? exec_node(x, n->c) : exec_body(x, n->c);
		break;
	case N_FOR:
		f = exec_for(x, n);
		break;
	case N_SET:
	case N_SETBLOCK:
		f = exec_set(x, n);
		break;
	case N_MACRO: {
		jv *m = jx_new(x, V_MACRO);
		m->u.m.node = n;
		m->u.m.closure = x->sc;
		assign(x, n->s, n->sn, m);
		break;
	}
	case N_CALLBLOCK: {
		jv *c = jx_new(x, V_MACRO);
		c->u.m.node = n;
		c->u.m.closure = x->sc;
		jx_str_of(x, x->out, eval_call(x, n->a, c));
		break;
	}
	case N_FILTERBLOCK: {
		jbuf *saved = x->out;
		jscope *sc = x->sc;
		jbuf b = {0};
		x->out = &b;
		exec_body(x, n->b);
		x->out = saved;
		x->sc = scope_new(x, sc);
		assign(x, "\1", 1, jb_value(x, &b));
		jv *v = jx_eval(x, n->a);
		x->sc = sc;
		jx_str_of(x, x->out, v);
		break;
	}
	case N_BREAK:
		f = FLOW_BREAK;
		break;
	case N_CONTINUE:
		f = FLOW_CONTINUE;
		break;
	default:
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "not a statement");
	}
	x->edepth--;
	return f;
}

/* ---- interface ---- */

train_jinja *train_jinja_parse(const char *src, size_t len, const char *name, char **err)
{
	train_jinja *t = xcalloc(1, sizeof *t);
	jinja_err *e = xcalloc(1, sizeof *e);
	t->name = xstrdup(name ? name : "template");
	e->name = t->name;
	t->ar.err = e;
	if (setjmp(e->jb)) {
		if (err)
			*err = e->msg;
		else
			free(e->msg);
		free(e);
		train_jinja_free(t);
		return NULL;
	}
	jinja_parse(t, src ? src : "", src ? len : 0, e);
	t->ar.err = NULL;
	free(e->msg);
	free(e);
	return t;
}

void train_jinja_free(train_jinja *t)
{
	if (!t)
		return;
	jinja_arena_free(&t->ar);
	free(t->name);
	free(t);
}

int train_jinja_render(const train_jinja *t, const cJSON *vars, const train_jinja_opts *opts,
		       char **out, char **err)
{
	*out = NULL;
	if (err)
		*err = NULL;
	jctx *x = xcalloc(1, sizeof *x);
	x->e.name = t->name;
	x->ar.err = &x->e;
	x->ar.limit = opts && opts->max_memory ? opts->max_memory : (size_t)256 << 20;
	x->max_iters = opts && opts->max_iterations ? opts->max_iterations : 10000000;
	x->max_depth = opts && opts->max_depth ? opts->max_depth : 100;
	if (opts && opts->now) {
		x->now = *opts->now;
	} else {
		time_t now = time(NULL);
		localtime_r(&now, &x->now);
	}
	if (setjmp(x->e.jb)) {
		int rc = x->e.code ? x->e.code : TRAIN_JINJA_ERENDER;
		if (err)
			*err = x->e.msg;
		else
			free(x->e.msg);
		jinja_arena_free(&x->ar);
		free(x);
		return rc;
	}
	x->root = x->sc = scope_new(x, NULL);
	for (const cJSON *c = vars ? vars->child : NULL; c; c = c->next)
		if (c->string)
			jx_dict_set(x, x->root->vars, jx_cstr(x, c->string), jx_from_json(x, c, 0));
	jbuf b = {0};
	x->out = &b;
	exec_body(x, t->root);
	*out = xstrndup(b.p ? b.p : "", b.n);
	free(x->e.msg);
	jinja_arena_free(&x->ar);
	free(x);
	return 0;
}
