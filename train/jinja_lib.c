/* jinja_lib.c: the filters, tests, string and dict methods and globals of
 * the Jinja interpreter (see jinja.h), with Python's semantics where chat
 * templates depend on them (str.strip's whitespace, split, json.dumps). */
#include "train/jinja.h"
#include "train/jinja_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "util/utf8.h"

/* ---- arguments ---- */

/* The argument at position pos (after the value) or called name; NULL when
 * not given. */
static jv *arg(const jargs *a, size_t pos, const char *name)
{
	if (pos < a->n)
		return a->v[pos];
	size_t n = strlen(name);
	for (size_t k = 0; k < a->nkw; k++)
		if (a->kwlen[k] == n && !memcmp(a->kw[k], name, n))
			return a->kwv[k];
	return NULL;
}

static int64_t int_arg(jctx *x, const jargs *a, size_t pos, const char *name, int64_t def)
{
	jv *v = arg(a, pos, name);
	if (!v || v->t == V_NONE)
		return def;
	if (v->t != V_INT && v->t != V_BOOL)
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "argument '%s' must be an integer, not %s", name,
			   jx_type_name(v));
	return v->u.i;
}

static int bool_arg(const jargs *a, size_t pos, const char *name, int def)
{
	jv *v = arg(a, pos, name);
	return v ? jx_truthy(v) : def;
}

static jv *str_arg(jctx *x, const jargs *a, size_t pos, const char *name)
{
	jv *v = arg(a, pos, name);
	if (!v || v->t == V_NONE)
		return NULL;
	if (v->t != V_STR)
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "argument '%s' must be a string, not %s", name,
			   jx_type_name(v));
	return v;
}

/* ---- Unicode helpers ---- */

static int is_space_cp(uint32_t c)
{
	return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
	       c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
	       c == 0x202f || c == 0x205f || c == 0x3000;
}

static uint32_t cp_at(const char *s, size_t n, size_t *len)
{
	uint32_t cp = 0xFFFD;
	int l = util_utf8_decode(s, n, &cp);
	*len = l > 0 ? (size_t)l : 1;
	if (l <= 0)
		cp = (unsigned char)s[0];
	return cp;
}

/* the start of the code point that ends at s+n */
static size_t cp_before(const char *s, size_t n)
{
	size_t k = n - 1;
	while (k > 0 && n - k < 4 && ((unsigned char)s[k] & 0xC0) == 0x80)
		k--;
	return k;
}

static int in_set(uint32_t c, const jv *chars)
{
	if (!chars)
		return is_space_cp(c);
	for (size_t i = 0; i < chars->u.s.n;) {
		size_t l;
		if (cp_at(chars->u.s.s + i, chars->u.s.n - i, &l) == c)
			return 1;
		i += l;
	}
	return 0;
}

/* str.strip / lstrip / rstrip (which: 1 left, 2 right, 3 both) */
static jv *strip(jctx *x, jv *s, const jv *chars, int which)
{
	const char *p = s->u.s.s;
	size_t a = 0, b = s->u.s.n, l;
	while ((which & 1) && a < b && in_set(cp_at(p + a, b - a, &l), chars))
		a += l;
	while ((which & 2) && b > a) {
		size_t k = cp_before(p + a, b - a) + a;
		if (!in_set(cp_at(p + k, b - k, &l), chars))
			break;
		b = k;
	}
	return jinja_str_ref(&x->ar, p + a, b - a);
}

/* case mapping: mode 0 lower, 1 upper, 2 capitalize, 3 title (str.title),
 * 4 the title filter (words begin after - space ( { [ <) */
static jv *recase(jctx *x, jv *s, int mode)
{
	jbuf b = {0};
	int prev_cased = 0, first = 1;
	for (size_t i = 0; i < s->u.s.n;) {
		size_t l;
		uint32_t c = cp_at(s->u.s.s + i, s->u.s.n - i, &l);
		int up = mode == 1 || (mode == 2 && first) || (mode == 3 && !prev_cased) ||
			 (mode == 4 && first);
		uint32_t o = (uint32_t)(up ? utf8proc_toupper((utf8proc_int32_t)c)
					   : utf8proc_tolower((utf8proc_int32_t)c));
		char u[4];
		if (o == c)
			jb_add(x, &b, s->u.s.s + i, l);
		else
			jb_add(x, &b, u, util_utf8_encode(o, u));
		utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
		prev_cased = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
			     cat == UTF8PROC_CATEGORY_LT;
		first = mode == 4 && (is_space_cp(c) || (c && c < 128 && strchr("-({[<", (int)c)));
		i += l;
	}
	return jb_value(x, &b);
}

static const char *find_sub(const char *h, size_t hn, const char *n, size_t nn)
{
	if (!nn)
		return h;
	return memmem(h, hn, n, nn);
}

static const char *rfind_sub(const char *h, size_t hn, const char *n, size_t nn)
{
	if (nn > hn)
		return NULL;
	for (size_t i = hn - nn + 1; i-- > 0;)
		if (!memcmp(h + i, n, nn))
			return h + i;
	return NULL;
}

static jv *replace(jctx *x, jv *s, jv *old, jv *nw, int64_t count)
{
	jbuf b = {0};
	const char *p = s->u.s.s, *end = p + s->u.s.n;
	if (!old->u.s.n) { /* Python inserts new between the code points */
		int64_t k = 0;
		for (size_t i = 0; i <= s->u.s.n;) {
			if (count < 0 || k < count) {
				jb_add(x, &b, nw->u.s.s, nw->u.s.n);
				k++;
			}
			if (i == s->u.s.n)
				break;
			size_t l;
			cp_at(p + i, s->u.s.n - i, &l);
			jb_add(x, &b, p + i, l);
			i += l;
		}
		return jb_value(x, &b);
	}
	for (int64_t k = 0; count < 0 || k < count; k++) {
		const char *h = find_sub(p, (size_t)(end - p), old->u.s.s, old->u.s.n);
		if (!h)
			break;
		jb_add(x, &b, p, (size_t)(h - p));
		jb_add(x, &b, nw->u.s.s, nw->u.s.n);
		p = h + old->u.s.n;
	}
	jb_add(x, &b, p, (size_t)(end - p));
	return jb_value(x, &b);
}

/* str.split / str.rsplit */
static jv *split(jctx *x, jv *s, jv *sep, int64_t maxsplit, int right)
{
	jv *l = jx_list(x, 0);
	const char *p = s->u.s.s;
	size_t n = s->u.s.n;
	if (sep && !sep->u.s.n)
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "empty separator");
	if (sep && !right) {
		for (int64_t k = 0; maxsplit < 0 || k < maxsplit; k++) {
			const char *h = find_sub(p, n, sep->u.s.s, sep->u.s.n);
			if (!h)
				break;
			jx_push(x, l, jinja_str_ref(&x->ar, p, (size_t)(h - p)));
			n -= (size_t)(h - p) + sep->u.s.n;
			p = h + sep->u.s.n;
		}
		jx_push(x, l, jinja_str_ref(&x->ar, p, n));
		return l;
	}
	if (sep) { /* rsplit: collected from the right, then reversed */
		jv *r = jx_list(x, 0);
		for (int64_t k = 0; maxsplit < 0 || k < maxsplit; k++) {
			const char *h = rfind_sub(p, n, sep->u.s.s, sep->u.s.n);
			if (!h)
				break;
			jx_push(x, r, jinja_str_ref(&x->ar, h + sep->u.s.n, n - (size_t)(h - p) - sep->u.s.n));
			n = (size_t)(h - p);
		}
		jx_push(x, r, jinja_str_ref(&x->ar, p, n));
		for (size_t i = r->u.l.n; i-- > 0;)
			jx_push(x, l, r->u.l.a[i]);
		return l;
	}
	/* runs of whitespace; rsplit without a separator splits from the left
	 * too unless maxsplit limits it (then the rest is kept on the left) */
	size_t i = 0, len;
	int64_t k = 0;
	if (right && maxsplit >= 0) {
		jv *r = jx_list(x, 0);
		size_t e = n;
		for (;;) {
			while (e > 0 && is_space_cp(cp_at(p + cp_before(p, e), e - cp_before(p, e), &len)))
				e = cp_before(p, e);
			if (!e)
				break;
			size_t b = e;
			if (k == maxsplit) {
				jx_push(x, r, jinja_str_ref(&x->ar, p, e));
				break;
			}
			while (b > 0 && !is_space_cp(cp_at(p + cp_before(p, b), b - cp_before(p, b), &len)))
				b = cp_before(p, b);
			jx_push(x, r, jinja_str_ref(&x->ar, p + b, e - b));
			k++;
			e = b;
		}
		for (size_t j = r->u.l.n; j-- > 0;)
			jx_push(x, l, r->u.l.a[j]);
		return l;
	}
	for (;;) {
		while (i < n && is_space_cp(cp_at(p + i, n - i, &len)))
			i += len;
		if (i >= n)
			break;
		if (maxsplit >= 0 && k == maxsplit) {
			jx_push(x, l, jinja_str_ref(&x->ar, p + i, n - i));
			break;
		}
		size_t b = i;
		while (i < n && !is_space_cp(cp_at(p + i, n - i, &len)))
			i += len;
		jx_push(x, l, jinja_str_ref(&x->ar, p + b, i - b));
		k++;
	}
	return l;
}

static size_t cp_count(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xC0) != 0x80;
	return c;
}

/* ---- JSON (transformers' tojson: json.dumps) ---- */

typedef struct jsonopt {
	const char *indent; /* NULL: one line */
	const char *item_sep, *key_sep;
	int sort_keys, ensure_ascii;
} jsonopt;

static void json_str(jctx *x, jbuf *b, const char *s, size_t n, int ascii)
{
	jb_adds(x, b, "\"");
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n"
			: c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
		if (esc) {
			jb_adds(x, b, esc);
			i++;
		} else if (c < 0x20 || (ascii && c == 0x7f)) {
			jb_addf(x, b, "\\u%04x", c);
			i++;
		} else if (c >= 0x80 && ascii) {
			size_t l;
			uint32_t cp = cp_at(s + i, n - i, &l);
			if (cp >= 0x10000) {
				cp -= 0x10000;
				jb_addf(x, b, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
			} else {
				jb_addf(x, b, "\\u%04x", cp);
			}
			i += l;
		} else {
			size_t k = i + 1;
			while (k < n && (unsigned char)s[k] >= 0x20 && s[k] != '"' && s[k] != '\\' &&
			       !(ascii && (unsigned char)s[k] >= 0x7f))
				k++;
			jb_add(x, b, s + i, k - i);
			i = k;
		}
	}
	jb_adds(x, b, "\"");
}

static void json_nl(jctx *x, jbuf *b, const jsonopt *o, int level)
{
	jb_adds(x, b, "\n");
	for (int k = 0; k < level; k++)
		jb_adds(x, b, o->indent);
}

static void json_key(jctx *x, jbuf *b, const jv *k, const jsonopt *o)
{
	switch (k->t) {
	case V_STR: json_str(x, b, k->u.s.s, k->u.s.n, o->ensure_ascii); return;
	case V_BOOL: jb_adds(x, b, k->u.i ? "\"true\"" : "\"false\""); return;
	case V_NONE: jb_adds(x, b, "\"null\""); return;
	case V_INT: jb_addf(x, b, "\"%lld\"", (long long)k->u.i); return;
	case V_FLOAT: {
		jbuf t = {0};
		jx_float_repr(x, &t, k->u.f);
		json_str(x, b, t.p, t.n, 0);
		return;
	}
	default:
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER,
			   "keys must be str, int, float, bool or None, not %s", jx_type_name(k));
	}
}

static void json_dump(jctx *x, jbuf *b, const jv *v, const jsonopt *o, int level)
{
	if (level > 500)
		jinja_fail(&x->e, TRAIN_JINJA_ELIMIT, "tojson: value nested too deeply");
	switch (v->t) {
	case V_NONE: jb_adds(x, b, "null"); return;
	case V_BOOL: jb_adds(x, b, v->u.i ? "true" : "false"); return;
	case V_INT: jb_addf(x, b, "%lld", (long long)v->u.i); return;
	case V_FLOAT:
		if (isnan(v->u.f))
			jb_adds(x, b, "NaN");
		else if (isinf(v->u.f))
			jb_adds(x, b, v->u.f < 0 ? "-Infinity" : "Infinity");
		else
			jx_float_repr(x, b, v->u.f);
		return;
	case V_STR: json_str(x, b, v->u.s.s, v->u.s.n, o->ensure_ascii); return;
	case V_LIST:
		if (v->tuple == JX_GEN)
			break;
		if (!v->u.l.n) {
			jb_adds(x, b, "[]");
			return;
		}
		jb_adds(x, b, "[");
		for (size_t i = 0; i < v->u.l.n; i++) {
			if (i)
				jb_adds(x, b, o->item_sep);
			if (o->indent)
				json_nl(x, b, o, level + 1);
			json_dump(x, b, v->u.l.a[i], o, level + 1);
		}
		if (o->indent)
			json_nl(x, b, o, level);
		jb_adds(x, b, "]");
		return;
	case V_DICT: {
		if (!v->u.d.n) {
			jb_adds(x, b, "{}");
			return;
		}
		size_t n = v->u.d.n, *ord = jinja_alloc(&x->ar, n * sizeof *ord);
		for (size_t i = 0; i < n; i++)
			ord[i] = i;
		for (size_t i = 1; o->sort_keys && i < n; i++) { /* insertion sort by key */
			jx_count_iterations(x, i);
			for (size_t j = i; j > 0; j--) {
				jv *p = v->u.d.k[ord[j - 1]], *q = v->u.d.k[ord[j]];
				if (!jx_compare(x, OP_GT, p, q))
					break;
				size_t t = ord[j];
				ord[j] = ord[j - 1];
				ord[j - 1] = t;
			}
		}
		jb_adds(x, b, "{");
		for (size_t i = 0; i < n; i++) {
			if (i)
				jb_adds(x, b, o->item_sep);
			if (o->indent)
				json_nl(x, b, o, level + 1);
			json_key(x, b, v->u.d.k[ord[i]], o);
			jb_adds(x, b, o->key_sep);
			json_dump(x, b, v->u.d.v[ord[i]], o, level + 1);
		}
		if (o->indent)
			json_nl(x, b, o, level);
		jb_adds(x, b, "}");
		return;
	}
	default:
		break;
	}
	jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "Object of type %s is not JSON serializable",
		   jx_type_name(v));
}

/* tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) */
static jv *tojson(jctx *x, jv *v, jargs *a)
{
	jsonopt o = {NULL, ", ", ": ", bool_arg(a, 3, "sort_keys", 0), bool_arg(a, 0, "ensure_ascii", 0)};
	jv *ind = arg(a, 1, "indent");
	if (ind && ind->t != V_NONE) {
		if (ind->t == V_STR) {
			o.indent = jinja_strndup(&x->ar, ind->u.s.s, ind->u.s.n);
		} else if (ind->t == V_INT || ind->t == V_BOOL) {
			int64_t w = ind->u.i < 0 ? 0 : ind->u.i > 64 ? 64 : ind->u.i;
			char *sp = jinja_alloc(&x->ar, (size_t)w + 1);
			memset(sp, ' ', (size_t)w);
			sp[w] = 0;
			o.indent = sp;
		} else {
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "tojson: indent must be an integer or a string");
		}
		o.item_sep = ",";
	}
	jv *sep = arg(a, 2, "separators");
	if (sep && sep->t != V_NONE) {
		if (sep->t != V_LIST || sep->u.l.n != 2 || sep->u.l.a[0]->t != V_STR ||
		    sep->u.l.a[1]->t != V_STR)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "tojson: separators must be two strings");
		o.item_sep = jinja_strndup(&x->ar, sep->u.l.a[0]->u.s.s, sep->u.l.a[0]->u.s.n);
		o.key_sep = jinja_strndup(&x->ar, sep->u.l.a[1]->u.s.s, sep->u.l.a[1]->u.s.n);
	}
	jbuf b = {0};
	json_dump(x, &b, v, &o, 0);
	return jb_value(x, &b);
}

/* ---- filters ---- */

enum {
	F_ABS, F_CAPITALIZE, F_DEFAULT, F_ESCAPE, F_FIRST, F_FLOAT, F_INDENT, F_INT, F_ITEMS,
	F_JOIN, F_LAST, F_LENGTH, F_LIST, F_LOWER, F_MAP, F_MAX, F_MIN, F_REJECT, F_REJECTATTR,
	F_REPLACE, F_REVERSE, F_SAFE, F_SELECT, F_SELECTATTR, F_SORT, F_STRING, F_SUM, F_TITLE,
	F_TOJSON, F_TRIM, F_UNIQUE, F_UPPER, F_WORDCOUNT,
};

static const struct {
	const char *name;
	int id;
} filters[] = {
	{"abs", F_ABS}, {"capitalize", F_CAPITALIZE}, {"count", F_LENGTH}, {"d", F_DEFAULT},
	{"default", F_DEFAULT}, {"e", F_ESCAPE}, {"escape", F_ESCAPE}, {"first", F_FIRST},
	{"float", F_FLOAT}, {"indent", F_INDENT}, {"int", F_INT}, {"items", F_ITEMS},
	{"join", F_JOIN}, {"last", F_LAST}, {"length", F_LENGTH}, {"list", F_LIST},
	{"lower", F_LOWER}, {"map", F_MAP}, {"max", F_MAX}, {"min", F_MIN}, {"reject", F_REJECT},
	{"rejectattr", F_REJECTATTR}, {"replace", F_REPLACE}, {"reverse", F_REVERSE},
	{"safe", F_SAFE}, {"select", F_SELECT}, {"selectattr", F_SELECTATTR}, {"sort", F_SORT},
	{"string", F_STRING}, {"sum", F_SUM}, {"title", F_TITLE}, {"tojson", F_TOJSON},
	{"trim", F_TRIM}, {"unique", F_UNIQUE}, {"upper", F_UPPER}, {"wordcount", F_WORDCOUNT},
};

int jinja_filter_id(const char *name, size_t n)
{
	for (size_t i = 0; i < sizeof filters / sizeof *filters; i++)
		if (n && filters[i].name[0] == name[0] && strlen(filters[i].name) == n && !memcmp(filters[i].name, name, n))
			return filters[i].id;
	return -1;
}

/* Jinja's attribute getter: "a.b.0" looked up item first, part by part. */
static jv *get_path(jctx *x, jv *v, const jv *path)
{
	if (path->t == V_INT)
		return jx_getitem(x, v, (jv *)path);
	const char *s = path->u.s.s, *end = s + path->u.s.n;
	while (s <= end) {
		const char *dot = memchr(s, '.', (size_t)(end - s));
		size_t n = dot ? (size_t)(dot - s) : (size_t)(end - s);
		size_t k = 0;
		while (k < n && s[k] >= '0' && s[k] <= '9')
			k++;
		jv *key = k == n && n && n < 18 ? jinja_int(&x->ar, strtoll(s, NULL, 10))
						: jinja_str_ref(&x->ar, s, n);
		if (v->t == V_UNDEF)
			return v;
		v = jx_getitem(x, v, key);
		if (!dot)
			break;
		s = dot + 1;
	}
	return v;
}

static jv *len_of(jctx *x, jv *v)
{
	switch (v->t) {
	case V_UNDEF: return jinja_int(&x->ar, 0);
	case V_STR: return jinja_int(&x->ar, (int64_t)cp_count(v->u.s.s, v->u.s.n));
	case V_LIST:
		if (v->tuple != JX_GEN)
			return jinja_int(&x->ar, (int64_t)v->u.l.n);
		break;
	case V_DICT: case V_NS: return jinja_int(&x->ar, (int64_t)v->u.d.n);
	default:
		break;
	}
	jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "object of type '%s' has no len()", jx_type_name(v));
}

/* select, reject, selectattr, rejectattr, map */
static jv *select_map(jctx *x, int id, jv *v, jargs *a)
{
	size_t n;
	jv **it = jx_iter(x, v, &n);
	jv *out = jx_list(x, n);
	out->tuple = JX_GEN;
	int attr = id == F_SELECTATTR || id == F_REJECTATTR;
	jv *path = attr ? arg(a, 0, "attribute") : NULL;
	if (attr && (!path || (path->t != V_STR && path->t != V_INT)))
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "selectattr/rejectattr need an attribute name");
	if (id == F_MAP) {
		jv *ma = arg(a, 99, "attribute");
		if (ma) {
			jv *def = arg(a, 99, "default");
			for (size_t i = 0; i < n; i++) {
				jv *r = get_path(x, it[i], ma);
				jx_push(x, out, r->t == V_UNDEF && def ? def : r);
			}
			return out;
		}
		jv *fname = str_arg(x, a, 0, "name");
		if (!fname)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "map needs a filter name or attribute=");
		int f = jinja_filter_id(fname->u.s.s, fname->u.s.n);
		if (f < 0)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "unknown filter \"%.*s\"",
				   (int)fname->u.s.n, fname->u.s.s);
		jargs rest = {a->v + 1, a->n - 1, a->kw, a->kwlen, a->kwv, a->nkw};
		for (size_t i = 0; i < n; i++)
			jx_push(x, out, jinja_filter(x, f, it[i], &rest));
		return out;
	}
	size_t first = attr ? 1 : 0;
	jv *tname = a->n > first ? a->v[first] : NULL;
	int test = -1;
	if (tname) {
		if (tname->t != V_STR || (test = jinja_test_id(tname->u.s.s, tname->u.s.n)) < 0)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "unknown test in select/reject");
	}
	jargs rest = {a->v + first + 1, a->n > first + 1 ? a->n - first - 1 : 0, a->kw, a->kwlen,
		      a->kwv, a->nkw};
	int want = id == F_SELECT || id == F_SELECTATTR;
	for (size_t i = 0; i < n; i++) {
		jv *item = attr ? get_path(x, it[i], path) : it[i];
		int ok = test >= 0 ? jinja_test(x, test, item, &rest) : jx_truthy(item);
		if (ok == want)
			jx_push(x, out, it[i]);
	}
	return out;
}

static jv *indent(jctx *x, jv *s, jargs *a)
{
	jv *w = arg(a, 0, "width");
	const char *ind = "    ";
	size_t in = 4;
	if (w && w->t == V_STR) {
		ind = w->u.s.s;
		in = w->u.s.n;
	} else if (w && (w->t == V_INT || w->t == V_BOOL)) {
		int64_t k = w->u.i < 0 ? 0 : w->u.i > 256 ? 256 : w->u.i;
		char *sp = jinja_alloc(&x->ar, (size_t)k + 1);
		memset(sp, ' ', (size_t)k);
		ind = sp;
		in = (size_t)k;
	}
	int first = bool_arg(a, 1, "first", 0), blank = bool_arg(a, 2, "blank", 0);
	jbuf b = {0};
	if (first)
		jb_add(x, &b, ind, in);
	const char *p = s->u.s.s, *end = p + s->u.s.n;
	int line0 = 1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (!line0) {
			jb_adds(x, &b, "\n");
			if (n || blank)
				jb_add(x, &b, ind, in);
		}
		jb_add(x, &b, p, n);
		line0 = 0;
		if (!nl)
			break;
		p = nl + 1;
	}
	return jb_value(x, &b);
}

static jv *to_int(jctx *x, jv *v, jargs *a)
{
	jv *def = arg(a, 0, "default");
	if (v->t == V_INT)
		return v;
	if (v->t == V_BOOL)
		return jinja_int(&x->ar, v->u.i);
	if (v->t == V_FLOAT && isfinite(v->u.f) && fabs(v->u.f) < 9.2e18)
		return jinja_int(&x->ar, (int64_t)v->u.f);
	if (v->t == V_STR) {
		char buf[64];
		size_t n = v->u.s.n < sizeof buf - 1 ? v->u.s.n : sizeof buf - 1;
		memcpy(buf, v->u.s.s, n);
		buf[n] = 0;
		char *end;
		long long i = strtoll(buf, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\n')
			end++;
		if (end != buf && !*end)
			return jinja_int(&x->ar, i);
		double d = strtod(buf, &end);
		while (*end == ' ' || *end == '\t' || *end == '\n')
			end++;
		if (end != buf && !*end && isfinite(d) && fabs(d) < 9.2e18)
			return jinja_int(&x->ar, (int64_t)d);
	}
	return def ? def : jinja_int(&x->ar, 0);
}

static jv *to_float(jctx *x, jv *v, jargs *a)
{
	jv *def = arg(a, 0, "default");
	if (v->t == V_FLOAT)
		return v;
	if (v->t == V_INT || v->t == V_BOOL)
		return jinja_float(&x->ar, (double)v->u.i);
	if (v->t == V_STR) {
		char buf[64];
		size_t n = v->u.s.n < sizeof buf - 1 ? v->u.s.n : sizeof buf - 1;
		memcpy(buf, v->u.s.s, n);
		buf[n] = 0;
		char *end;
		double d = strtod(buf, &end);
		if (end != buf && !*end)
			return jinja_float(&x->ar, d);
	}
	return def ? def : jinja_float(&x->ar, 0);
}

static jv *escape(jctx *x, jv *s)
{
	jbuf b = {0};
	for (size_t i = 0; i < s->u.s.n; i++) {
		char c = s->u.s.s[i];
		const char *r = c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;"
			: c == '"' ? "&#34;" : c == '\'' ? "&#39;" : NULL;
		if (r)
			jb_adds(x, &b, r);
		else
			jb_add(x, &b, &c, 1);
	}
	return jb_value(x, &b);
}

/* the sort key of sort/unique/min/max: attribute, case folded */
static jv *sort_key(jctx *x, jv *v, jv *attr, int cs)
{
	if (attr)
		v = get_path(x, v, attr);
	if (!cs && v->t == V_STR)
		v = recase(x, v, 0);
	return v;
}

static jv *sort_list(jctx *x, jv *v, jargs *a, int id)
{
	size_t n;
	jv **it = jx_iter(x, v, &n);
	int rev = id == F_SORT ? bool_arg(a, 0, "reverse", 0) : 0;
	int cs = bool_arg(a, id == F_SORT ? 1 : 0, "case_sensitive", 0);
	jv *attr = arg(a, id == F_SORT ? 2 : 1, "attribute");
	jv **keys = jinja_alloc(&x->ar, (n + 1) * sizeof *keys);
	jv *out = jx_list(x, n);
	for (size_t i = 0; i < n; i++) {
		keys[i] = sort_key(x, it[i], attr, cs);
		jx_push(x, out, it[i]);
	}
	if (id == F_UNIQUE) {
		jv *u = jx_list(x, n), *seen = jx_list(x, n);
		u->tuple = JX_GEN;
		for (size_t i = 0; i < n; i++) {
			jx_count_iterations(x, seen->u.l.n + 1);
			if (!jx_contains(x, seen, keys[i])) {
				jx_push(x, seen, keys[i]);
				jx_push(x, u, it[i]);
			}
		}
		return u;
	}
	for (size_t i = 1; i < n; i++) { /* stable insertion sort */
		jx_count_iterations(x, i);
		for (size_t j = i; j > 0; j--) {
			int gt = jx_compare(x, rev ? OP_LT : OP_GT, keys[j - 1], keys[j]);
			if (!gt)
				break;
			jv *t = keys[j];
			keys[j] = keys[j - 1];
			keys[j - 1] = t;
			t = out->u.l.a[j];
			out->u.l.a[j] = out->u.l.a[j - 1];
			out->u.l.a[j - 1] = t;
		}
	}
	if (id == F_MIN || id == F_MAX) {
		if (!n)
			return jx_undef(x, "No aggregated item, sequence was empty.");
		return out->u.l.a[id == F_MIN ? 0 : n - 1];
	}
	return out;
}

static jv *filter_seq(jctx *x, int id, jv *v, jargs *a)
{
	size_t n;
	jv **it;
	switch (id) {
	case F_FIRST:
	case F_LAST:
		it = jx_iter(x, v, &n);
		if (!n)
			return jx_undef(x, "No %s item, sequence was empty.", id == F_FIRST ? "first" : "last");
		return it[id == F_FIRST ? 0 : n - 1];
	case F_LIST:
		it = jx_iter(x, v, &n);
		{
			jv *l = jx_list(x, n);
			for (size_t i = 0; i < n; i++)
				jx_push(x, l, it[i]);
			return l;
		}
	case F_REVERSE:
		if (v->t == V_STR) {
			jbuf b = {0};
			for (size_t e = v->u.s.n; e > 0;) {
				size_t s = cp_before(v->u.s.s, e);
				jb_add(x, &b, v->u.s.s + s, e - s);
				e = s;
			}
			return jb_value(x, &b);
		}
		it = jx_iter(x, v, &n);
		{
			jv *l = jx_list(x, n);
			l->tuple = JX_GEN; /* reversed(): an iterator */
			for (size_t i = n; i-- > 0;)
				jx_push(x, l, it[i]);
			return l;
		}
	case F_ITEMS:
		if (v->t == V_UNDEF) {
			jv *e = jx_list(x, 0);
			e->tuple = JX_GEN;
			return e;
		}
		if (v->t != V_DICT && v->t != V_NS)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "Can only get item pairs from a mapping.");
		{
			jv *l = jx_list(x, v->u.d.n);
			l->tuple = JX_GEN;
			for (size_t i = 0; i < v->u.d.n; i++) {
				jv *p = jx_list(x, 2);
				p->tuple = 1;
				jx_push(x, p, v->u.d.k[i]);
				jx_push(x, p, v->u.d.v[i]);
				jx_push(x, l, p);
			}
			return l;
		}
	case F_JOIN: {
		jv *d = str_arg(x, a, 0, "d");
		jv *attr = arg(a, 1, "attribute");
		it = jx_iter(x, v, &n);
		jbuf b = {0};
		for (size_t i = 0; i < n; i++) {
			if (i && d)
				jb_add(x, &b, d->u.s.s, d->u.s.n);
			jx_str_of(x, &b, attr ? get_path(x, it[i], attr) : it[i]);
		}
		return jb_value(x, &b);
	}
	case F_SUM: {
		jv *attr = arg(a, 0, "attribute");
		jv *acc = arg(a, 1, "start");
		if (!acc)
			acc = jinja_int(&x->ar, 0);
		it = jx_iter(x, v, &n);
		for (size_t i = 0; i < n; i++) {
			jv *item = attr ? get_path(x, it[i], attr) : it[i];
			if ((acc->t == V_INT || acc->t == V_BOOL) && (item->t == V_INT || item->t == V_BOOL)) {
				int64_t r;
				if (__builtin_add_overflow(acc->u.i, item->u.i, &r))
					jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "integer overflow");
				acc = jinja_int(&x->ar, r);
			} else if ((acc->t == V_INT || acc->t == V_FLOAT || acc->t == V_BOOL) &&
				   (item->t == V_INT || item->t == V_FLOAT || item->t == V_BOOL)) {
				double p = acc->t == V_FLOAT ? acc->u.f : (double)acc->u.i;
				double q = item->t == V_FLOAT ? item->u.f : (double)item->u.i;
				acc = jinja_float(&x->ar, p + q);
			} else {
				jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "sum: unsupported operand types");
			}
		}
		return acc;
	}
	case F_SORT:
	case F_UNIQUE:
	case F_MIN:
	case F_MAX:
		return sort_list(x, v, a, id);
	}
	return select_map(x, id, v, a);
}

jv *jinja_filter(jctx *x, int id, jv *v, jargs *a)
{
	switch (id) {
	case F_DEFAULT: {
		jv *d = arg(a, 0, "default_value");
		int boolean = bool_arg(a, 1, "boolean", 0);
		if (v->t == V_UNDEF || (boolean && !jx_truthy(v)))
			return d ? d : jx_cstr(x, "");
		return v;
	}
	case F_LENGTH: return len_of(x, v);
	case F_TOJSON: return tojson(x, v, a);
	case F_SAFE:
	case F_STRING: return jx_to_str(x, v);
	case F_TRIM: return strip(x, jx_to_str(x, v), str_arg(x, a, 0, "chars"), 3);
	case F_UPPER: return recase(x, jx_to_str(x, v), 1);
	case F_LOWER: return recase(x, jx_to_str(x, v), 0);
	case F_CAPITALIZE: return recase(x, jx_to_str(x, v), 2);
	case F_TITLE: return recase(x, jx_to_str(x, v), 4);
	case F_ESCAPE: return escape(x, jx_to_str(x, v));
	case F_INDENT: return indent(x, jx_to_str(x, v), a);
	case F_INT: return to_int(x, v, a);
	case F_FLOAT: return to_float(x, v, a);
	case F_WORDCOUNT: {
		jv *w = split(x, jx_to_str(x, v), NULL, -1, 0);
		return jinja_int(&x->ar, (int64_t)w->u.l.n);
	}
	case F_ABS:
		if (v->t == V_FLOAT)
			return jinja_float(&x->ar, fabs(v->u.f));
		if (v->t == V_INT || v->t == V_BOOL) {
			if (v->u.i == INT64_MIN)
				jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "integer overflow");
			return jinja_int(&x->ar, v->u.i < 0 ? -v->u.i : v->u.i);
		}
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "bad operand type for abs(): '%s'", jx_type_name(v));
	case F_REPLACE: {
		jv *old = str_arg(x, a, 0, "old"), *nw = str_arg(x, a, 1, "new");
		if (!old || !nw)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "replace needs two strings");
		return replace(x, jx_to_str(x, v), old, nw, int_arg(x, a, 2, "count", -1));
	}
	}
	return filter_seq(x, id, v, a);
}

/* ---- tests ---- */

enum {
	T_DEFINED, T_UNDEFINED, T_NONE, T_STRING, T_MAPPING, T_ITERABLE, T_SEQUENCE, T_NUMBER,
	T_INTEGER, T_FLOAT, T_BOOLEAN, T_TRUE, T_FALSE, T_IN, T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE,
	T_ODD, T_EVEN, T_DIVISIBLEBY, T_CALLABLE, T_LOWER, T_UPPER, T_SAMEAS,
};

static const struct {
	const char *name;
	int id;
} tests[] = {
	{"defined", T_DEFINED}, {"undefined", T_UNDEFINED}, {"none", T_NONE}, {"string", T_STRING},
	{"mapping", T_MAPPING}, {"iterable", T_ITERABLE}, {"sequence", T_SEQUENCE},
	{"number", T_NUMBER}, {"integer", T_INTEGER}, {"float", T_FLOAT}, {"boolean", T_BOOLEAN},
	{"true", T_TRUE}, {"false", T_FALSE}, {"in", T_IN}, {"eq", T_EQ}, {"equalto", T_EQ},
	{"==", T_EQ}, {"ne", T_NE}, {"!=", T_NE}, {"lt", T_LT}, {"lessthan", T_LT}, {"<", T_LT},
	{"le", T_LE}, {"<=", T_LE}, {"gt", T_GT}, {"greaterthan", T_GT}, {">", T_GT}, {"ge", T_GE},
	{">=", T_GE}, {"odd", T_ODD}, {"even", T_EVEN}, {"divisibleby", T_DIVISIBLEBY},
	{"callable", T_CALLABLE}, {"lower", T_LOWER}, {"upper", T_UPPER}, {"sameas", T_SAMEAS},
};

int jinja_test_id(const char *name, size_t n)
{
	for (size_t i = 0; i < sizeof tests / sizeof *tests; i++)
		if (n && tests[i].name[0] == name[0] && strlen(tests[i].name) == n && !memcmp(tests[i].name, name, n))
			return tests[i].id;
	return -1;
}

static jv *test_operand(jctx *x, jargs *a, const char *what)
{
	jv *o = arg(a, 0, "other");
	if (!o)
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "test '%s' needs an argument", what);
	return o;
}

int jinja_test(jctx *x, int id, jv *v, jargs *a)
{
	static const int cmp_ops[] = {OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE};
	switch (id) {
	case T_DEFINED: return v->t != V_UNDEF;
	case T_UNDEFINED: return v->t == V_UNDEF;
	case T_NONE: return v->t == V_NONE;
	case T_STRING: return v->t == V_STR;
	case T_MAPPING: return v->t == V_DICT;
	case T_ITERABLE: return v->t == V_UNDEF || v->t == V_STR || v->t == V_LIST || v->t == V_DICT;
	case T_SEQUENCE: return v->t == V_UNDEF || v->t == V_STR || v->t == V_LIST || v->t == V_DICT;
	case T_NUMBER: return v->t == V_INT || v->t == V_FLOAT || v->t == V_BOOL;
	case T_INTEGER: return v->t == V_INT;
	case T_FLOAT: return v->t == V_FLOAT;
	case T_BOOLEAN: return v->t == V_BOOL;
	case T_TRUE: return v->t == V_BOOL && v->u.i;
	case T_FALSE: return v->t == V_BOOL && !v->u.i;
	case T_CALLABLE: return v->t == V_MACRO || v->t == V_FUNC || v->t == V_METHOD;
	case T_IN: return jx_contains(x, test_operand(x, a, "in"), v);
	case T_SAMEAS: {
		jv *o = test_operand(x, a, "sameas");
		if (v->t == V_NONE || v->t == V_BOOL || o->t == V_NONE || o->t == V_BOOL)
			return v->t == o->t && (v->t == V_NONE || v->u.i == o->u.i);
		return v == o;
	}
	case T_EQ: case T_NE: case T_LT: case T_LE: case T_GT: case T_GE:
		return jx_compare(x, cmp_ops[id - T_EQ], v, test_operand(x, a, "comparison"));
	case T_ODD: case T_EVEN: case T_DIVISIBLEBY: {
		if (v->t == V_UNDEF)
			jx_fail_undef(x, v);
		if (v->t != V_INT && v->t != V_BOOL)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "test needs an integer, not %s", jx_type_name(v));
		int64_t d = id == T_DIVISIBLEBY ? int_arg(x, a, 0, "num", 1) : 2;
		if (!d)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "division by zero");
		int64_t r = d == -1 ? 0 : v->u.i % d;
		return id == T_ODD ? r != 0 : r == 0;
	}
	case T_LOWER: case T_UPPER: {
		jv *s = jx_to_str(x, v);
		int cased = 0;
		for (size_t i = 0; i < s->u.s.n;) {
			size_t l;
			uint32_t c = cp_at(s->u.s.s + i, s->u.s.n - i, &l);
			utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
			if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT) {
				if (id == T_LOWER)
					return 0;
				cased = 1;
			} else if (cat == UTF8PROC_CATEGORY_LL) {
				if (id == T_UPPER)
					return 0;
				cased = 1;
			}
			i += l;
		}
		return cased;
	}
	}
	return 0;
}

/* ---- methods ---- */

enum {
	M_STARTSWITH, M_ENDSWITH, M_SPLIT, M_RSPLIT, M_STRIP, M_LSTRIP, M_RSTRIP, M_REPLACE,
	M_UPPER, M_LOWER, M_TITLE, M_CAPITALIZE, M_FIND, M_COUNT, M_JOIN, M_ITEMS = 100, M_KEYS,
	M_VALUES, M_GET,
};

static const struct {
	const char *name;
	int id;
} methods[] = {
	{"startswith", M_STARTSWITH}, {"endswith", M_ENDSWITH}, {"split", M_SPLIT},
	{"rsplit", M_RSPLIT}, {"strip", M_STRIP}, {"lstrip", M_LSTRIP}, {"rstrip", M_RSTRIP},
	{"replace", M_REPLACE}, {"upper", M_UPPER}, {"lower", M_LOWER}, {"title", M_TITLE},
	{"capitalize", M_CAPITALIZE}, {"find", M_FIND}, {"count", M_COUNT}, {"join", M_JOIN},
	{"items", M_ITEMS}, {"keys", M_KEYS}, {"values", M_VALUES}, {"get", M_GET},
};

int jinja_method_id(const jv *self, const char *name, size_t n)
{
	if ((self->t != V_STR && self->t != V_DICT) || !n)
		return -1;
	for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
		if (methods[i].name[0] == name[0] && strlen(methods[i].name) == n &&
		    !memcmp(methods[i].name, name, n) &&
		    (methods[i].id >= M_ITEMS) == (self->t == V_DICT))
			return methods[i].id;
	return -1;
}

static int affix(jctx *x, jv *s, jv *p, int end)
{
	if (p->t == V_LIST) {
		for (size_t i = 0; i < p->u.l.n; i++)
			if (affix(x, s, p->u.l.a[i], end))
				return 1;
		return 0;
	}
	if (p->t != V_STR)
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "%swith first arg must be str or a tuple of str",
			   end ? "end" : "start");
	if (p->u.s.n > s->u.s.n)
		return 0;
	return !memcmp(s->u.s.s + (end ? s->u.s.n - p->u.s.n : 0), p->u.s.s, p->u.s.n);
}

static jv *dict_method(jctx *x, int id, jv *d, jargs *a)
{
	if (id == M_GET) {
		jv *k = arg(a, 0, "key");
		if (!k)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "get expected at least 1 argument");
		jv *r = jx_dict_get(d, k), *def = arg(a, 1, "default");
		return r ? r : def ? def : jinja_none();
	}
	jv *l = jx_list(x, d->u.d.n);
	for (size_t i = 0; i < d->u.d.n; i++) {
		if (id == M_KEYS) {
			jx_push(x, l, d->u.d.k[i]);
		} else if (id == M_VALUES) {
			jx_push(x, l, d->u.d.v[i]);
		} else {
			jv *p = jx_list(x, 2);
			p->tuple = 1;
			jx_push(x, p, d->u.d.k[i]);
			jx_push(x, p, d->u.d.v[i]);
			jx_push(x, l, p);
		}
	}
	return l;
}

jv *jinja_call_method(jctx *x, jv *m, jargs *a)
{
	jv *s = m->u.fn.self;
	int id = m->u.fn.id;
	if (id == JX_METHOD_CYCLE) {
		if (!a->n)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "no items for cycling given");
		jv *i0 = jx_dict_get_s(s, "index0", 6);
		return a->v[(size_t)i0->u.i % a->n];
	}
	if (id >= M_ITEMS)
		return dict_method(x, id, s, a);
	switch (id) {
	case M_STARTSWITH:
	case M_ENDSWITH: {
		jv *p = arg(a, 0, "prefix");
		if (!p)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "%s takes one argument", m->u.fn.name);
		return jinja_bool(affix(x, s, p, id == M_ENDSWITH));
	}
	case M_SPLIT:
	case M_RSPLIT:
		return split(x, s, str_arg(x, a, 0, "sep"), int_arg(x, a, 1, "maxsplit", -1),
			     id == M_RSPLIT);
	case M_STRIP: return strip(x, s, str_arg(x, a, 0, "chars"), 3);
	case M_LSTRIP: return strip(x, s, str_arg(x, a, 0, "chars"), 1);
	case M_RSTRIP: return strip(x, s, str_arg(x, a, 0, "chars"), 2);
	case M_REPLACE: {
		jv *old = str_arg(x, a, 0, "old"), *nw = str_arg(x, a, 1, "new");
		if (!old || !nw)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "replace needs two strings");
		return replace(x, s, old, nw, int_arg(x, a, 2, "count", -1));
	}
	case M_UPPER: return recase(x, s, 1);
	case M_LOWER: return recase(x, s, 0);
	case M_TITLE: return recase(x, s, 3);
	case M_CAPITALIZE: return recase(x, s, 2);
	case M_FIND:
	case M_COUNT: {
		jv *sub = str_arg(x, a, 0, "sub");
		if (!sub)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "%s needs a string", m->u.fn.name);
		if (id == M_FIND) {
			const char *h = find_sub(s->u.s.s, s->u.s.n, sub->u.s.s, sub->u.s.n);
			return jinja_int(&x->ar, h ? (int64_t)cp_count(s->u.s.s, (size_t)(h - s->u.s.s)) : -1);
		}
		if (!sub->u.s.n)
			return jinja_int(&x->ar, (int64_t)cp_count(s->u.s.s, s->u.s.n) + 1);
		int64_t c = 0;
		for (const char *p = s->u.s.s, *e = p + s->u.s.n;
		     (p = find_sub(p, (size_t)(e - p), sub->u.s.s, sub->u.s.n)); p += sub->u.s.n)
			c++;
		return jinja_int(&x->ar, c);
	}
	case M_JOIN: {
		jv *l = arg(a, 0, "iterable");
		if (!l)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "join takes one argument");
		size_t n;
		jv **it = jx_iter(x, l, &n);
		jbuf b = {0};
		for (size_t i = 0; i < n; i++) {
			if (it[i]->t != V_STR)
				jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "sequence item %zu: expected str instance, %s found",
					   i, jx_type_name(it[i]));
			if (i)
				jb_add(x, &b, s->u.s.s, s->u.s.n);
			jb_add(x, &b, it[i]->u.s.s, it[i]->u.s.n);
		}
		return jb_value(x, &b);
	}
	}
	jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "unknown method");
}

/* ---- globals ---- */

enum { G_RANGE, G_NAMESPACE, G_RAISE, G_STRFTIME, G_DICT };

int jinja_global_id(const char *name, size_t n)
{
	static const char *const g[] = {"range", "namespace", "raise_exception", "strftime_now", "dict"};
	for (size_t i = 0; i < sizeof g / sizeof *g; i++)
		if (n && g[i][0] == name[0] && strlen(g[i]) == n && !memcmp(g[i], name, n))
			return (int)i;
	return -1;
}

static jv *range(jctx *x, jargs *a)
{
	int64_t lo = 0, hi, step = 1;
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i]->t != V_INT && a->v[i]->t != V_BOOL)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "range() needs integers, not %s",
				   jx_type_name(a->v[i]));
	if (a->n == 1) {
		hi = a->v[0]->u.i;
	} else if (a->n == 2 || a->n == 3) {
		lo = a->v[0]->u.i;
		hi = a->v[1]->u.i;
		if (a->n == 3)
			step = a->v[2]->u.i;
	} else {
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "range expected 1 to 3 arguments, got %zu", a->n);
	}
	if (!step)
		jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "range() arg 3 must not be zero");
	jv *l = jx_list(x, 0);
	for (int64_t i = lo; step > 0 ? i < hi : i > hi;) {
		jx_count_iterations(x, 1);
		jx_push(x, l, jinja_int(&x->ar, i));
		if (__builtin_add_overflow(i, step, &i))
			break;
	}
	return l;
}

jv *jinja_call_global(jctx *x, int id, jargs *a)
{
	switch (id) {
	case G_RANGE:
		return range(x, a);
	case G_NAMESPACE:
	case G_DICT: {
		jv *d = jx_dict(x, id == G_NAMESPACE ? V_NS : V_DICT, a->nkw);
		if (a->n > 1 || (a->n == 1 && a->v[0]->t != V_DICT))
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "%s() takes keyword arguments or one mapping",
				   id == G_DICT ? "dict" : "namespace");
		if (a->n)
			for (size_t i = 0; i < a->v[0]->u.d.n; i++)
				jx_dict_set(x, d, a->v[0]->u.d.k[i], a->v[0]->u.d.v[i]);
		for (size_t k = 0; k < a->nkw; k++)
			jx_dict_set(x, d, jinja_str_ref(&x->ar, a->kw[k], a->kwlen[k]), a->kwv[k]);
		return d;
	}
	case G_RAISE: {
		jv *m = a->n ? jx_to_str(x, a->v[0]) : jx_cstr(x, "");
		jinja_fail(&x->e, TRAIN_JINJA_ERAISE, "%.*s", (int)(m->u.s.n > 4096 ? 4096 : m->u.s.n),
			   m->u.s.s);
	}
	case G_STRFTIME: {
		jv *f = a->n ? a->v[0] : NULL;
		if (!f || f->t != V_STR)
			jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "strftime_now needs a format string");
		char *fmt = jinja_strndup(&x->ar, f->u.s.s, f->u.s.n > 256 ? 256 : f->u.s.n);
		char out[512];
		size_t n = *fmt ? strftime(out, sizeof out, fmt, &x->now) : 0;
		return jx_str(x, out, n);
	}
	}
	jinja_fail(&x->e, TRAIN_JINJA_ERENDER, "unknown function");
}
