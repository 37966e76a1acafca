/* jinja_parse.c: arena, errors, lexer and parser of the Jinja interpreter
 * (see jinja.h). The lexer follows Jinja2's with trim_blocks and
 * lstrip_blocks on; the parser builds the tree of jinja_int.h. */
#include "train/jinja_int.h"
#include "train/jinja.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

/* ---- errors and arena ---- */

void jinja_fail(jinja_err *e, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *m = xvasprintf(fmt, ap);
	va_end(ap);
	free(e->msg);
	e->msg = xasprintf("%s:%d: %s", e->name ? e->name : "template", e->line, m);
	free(m);
	e->code = code;
	longjmp(e->jb, 1);
}

struct jinja_chunk {
	jinja_chunk *next;
	size_t cap, used;
	size_t pad; /* keeps data 16-aligned on 64-bit targets */
	unsigned char data[];
};

#define CHUNK_MIN 16384
#define CHUNK_MAX (64u << 10)
#define SPARE_MAX 8

/* Chunks of freed arenas kept for the next arena of the same thread (a
 * rendering then takes no memory from malloc in the common case); freed
 * when the thread ends (spare_key's destructor). */
static __thread jinja_chunk *spare;
static __thread int nspare;
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;

static void spare_free(void *unused)
{
	(void)unused;
	while (spare) {
		jinja_chunk *c = spare;
		spare = c->next;
		free(c);
	}
	nspare = 0;
}

static void spare_init(void)
{
	pthread_key_create(&spare_key, spare_free);
}

static jinja_chunk *chunk_new(size_t cap)
{
	if (spare && spare->cap >= cap && cap <= CHUNK_MAX) {
		jinja_chunk *c = spare;
		spare = c->next;
		nspare--;
		return c;
	}
	jinja_chunk *c = xmalloc(sizeof *c + cap);
	c->cap = cap;
	return c;
}

void *jinja_alloc(jinja_arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	jinja_chunk *c = a->head;
	if (!c || c->cap - c->used < n) {
		size_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
		/* chunks grow to 64 KiB, below malloc's mmap threshold: a rendering's
		 * chunks are then reused memory, not fresh pages */
		if (c && cap < c->cap * 2 && c->cap * 2 <= CHUNK_MAX && n <= c->cap * 2)
			cap = c->cap * 2;
		if (cap < CHUNK_MAX && n <= CHUNK_MAX && spare && spare->cap >= n)
			cap = spare->cap; /* a spare chunk fits: take it whole */
		if (a->limit && (cap > a->limit || a->total > a->limit - cap))
			jinja_fail(a->err, TRAIN_JINJA_ELIMIT, "memory limit of %zu bytes reached",
				   a->limit);
		jinja_chunk *nc = chunk_new(cap);
		cap = nc->cap;
		nc->used = 0;
		a->total += cap;
		if (c && n > CHUNK_MIN && c->cap - c->used >= CHUNK_MIN / 4) {
			/* a big block: keep the current chunk for small ones */
			nc->next = c->next;
			c->next = nc;
			nc->used = n;
			return nc->data;
		}
		nc->next = c;
		a->head = c = nc;
	}
	void *p = c->data + c->used;
	c->used += n;
	return p;
}

void *jinja_zalloc(jinja_arena *a, size_t n)
{
	void *p = jinja_alloc(a, n);
	memset(p, 0, n);
	return p;
}

char *jinja_strndup(jinja_arena *a, const char *s, size_t n)
{
	char *p = jinja_alloc(a, n + 1);
	if (n)
		memcpy(p, s, n);
	p[n] = 0;
	return p;
}

void jinja_arena_free(jinja_arena *a)
{
	for (jinja_chunk *c = a->head, *nx; c; c = nx) {
		nx = c->next;
		if (nspare < SPARE_MAX && c->cap == CHUNK_MAX) {
			if (!nspare) {
				pthread_once(&spare_once, spare_init);
				pthread_setspecific(spare_key, &spare); /* any non-NULL value */
			}
			c->next = spare;
			spare = c;
			nspare++;
		} else {
			free(c);
		}
	}
	a->head = NULL;
	a->total = 0;
}

/* ---- lexer ---- */

enum { T_EOF, T_TEXT, T_VBEGIN, T_VEND, T_BBEGIN, T_BEND, T_NAME, T_STR, T_INT, T_FLOAT, T_OP };

typedef struct jtok {
	int type, line;
	const char *s; /* text, name, operator, decoded string */
	size_t n;
	int64_t i;
	double f;
} jtok;

typedef struct lexer {
	const char *src;
	size_t len, pos;
	int line;
	jtok *toks;
	size_t nt, cap;
	jinja_arena *ar;
	jinja_err *e;
} lexer;

static jtok *push_tok(lexer *L, int type, const char *s, size_t n)
{
	if (L->nt == L->cap) {
		L->cap = L->cap ? L->cap * 2 : 256;
		jtok *nt = jinja_alloc(L->ar, L->cap * sizeof *nt);
		if (L->nt)
			memcpy(nt, L->toks, L->nt * sizeof *nt);
		L->toks = nt;
	}
	jtok *t = &L->toks[L->nt++];
	memset(t, 0, sizeof *t);
	t->type = type;
	t->line = L->line;
	t->s = s;
	t->n = n;
	return t;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void count_lines(lexer *L, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		L->line += s[i] == '\n';
}

/* Decode a string literal's body as Python's unicode-escape does. */
static void lex_string(lexer *L, char q)
{
	const char *s = L->src;
	size_t p = L->pos + 1;
	util_buf b = UTIL_BUF_INIT;
	int start_line = L->line;
	for (;;) {
		if (p >= L->len) {
			util_buf_free(&b);
			L->line = start_line;
			L->e->line = start_line;
			jinja_fail(L->e, TRAIN_JINJA_ESYNTAX, "unterminated string");
		}
		char c = s[p];
		if (c == q)
			break;
		if (c == '\n')
			L->line++;
		if (c != '\\' || p + 1 >= L->len) {
			util_buf_addc(&b, c);
			p++;
			continue;
		}
		char d = s[p + 1];
		p += 2;
		uint32_t cp = 0;
		int hex = 0;
		switch (d) {
		case 'n': util_buf_addc(&b, '\n'); break;
		case 't': util_buf_addc(&b, '\t'); break;
		case 'r': util_buf_addc(&b, '\r'); break;
		case 'a': util_buf_addc(&b, '\a'); break;
		case 'b': util_buf_addc(&b, '\b'); break;
		case 'f': util_buf_addc(&b, '\f'); break;
		case 'v': util_buf_addc(&b, '\v'); break;
		case '\\': case '\'': case '"': util_buf_addc(&b, d); break;
		case '\n': L->line++; break; /* line continuation */
		case 'x': hex = 2; break;
		case 'u': hex = 4; break;
		case 'U': hex = 8; break;
		default:
			if (d >= '0' && d <= '7') {
				cp = (uint32_t)(d - '0');
				for (int k = 0; k < 2 && p < L->len && s[p] >= '0' && s[p] <= '7'; k++)
					cp = cp * 8 + (uint32_t)(s[p++] - '0');
				char u[4];
				util_buf_add(&b, u, util_utf8_encode(cp, u));
			} else {
				util_buf_addc(&b, '\\');
				util_buf_addc(&b, d);
				if (d == '\n')
					L->line++;
			}
		}
		if (hex) {
			for (int k = 0; k < hex; k++, p++) {
				char h = p < L->len ? s[p] : 0;
				int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
					: h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
				if (v < 0) {
					util_buf_free(&b);
					jinja_fail(L->e, TRAIN_JINJA_ESYNTAX, "bad \\%c escape in a string", d);
				}
				cp = cp * 16 + (uint32_t)v;
			}
			if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
				cp = 0xFFFD;
			char u[4];
			util_buf_add(&b, u, util_utf8_encode(cp, u));
		}
	}
	jtok *t = push_tok(L, T_STR, NULL, b.len);
	t->line = start_line;
	t->s = jinja_strndup(L->ar, b.data ? b.data : "", b.len);
	util_buf_free(&b);
	L->pos = p + 1;
}

static int digit_run(const char *s, size_t len, size_t *p)
{
	size_t q = *p;
	if (q >= len || s[q] < '0' || s[q] > '9')
		return 0;
	while (q < len && ((s[q] >= '0' && s[q] <= '9') ||
			   (s[q] == '_' && q + 1 < len && s[q + 1] >= '0' && s[q + 1] <= '9')))
		q++;
	*p = q;
	return 1;
}

static void lex_number(lexer *L)
{
	const char *s = L->src;
	size_t p = L->pos, q;
	digit_run(s, L->len, &p);
	int isf = 0;
	if (p + 1 < L->len && s[p] == '.' && s[p + 1] >= '0' && s[p + 1] <= '9') {
		q = p + 1;
		digit_run(s, L->len, &q);
		p = q;
		isf = 1;
	}
	if (p < L->len && (s[p] == 'e' || s[p] == 'E')) {
		q = p + 1;
		if (q < L->len && (s[q] == '+' || s[q] == '-'))
			q++;
		if (digit_run(s, L->len, &q)) {
			p = q;
			isf = 1;
		}
	}
	char buf[128];
	size_t n = 0;
	for (size_t k = L->pos; k < p && n + 1 < sizeof buf; k++)
		if (s[k] != '_')
			buf[n++] = s[k];
	buf[n] = 0;
	jtok *t = push_tok(L, isf ? T_FLOAT : T_INT, s + L->pos, p - L->pos);
	if (isf) {
		t->f = strtod(buf, NULL);
	} else {
		char *end;
		unsigned long long v = strtoull(buf, &end, 10);
		if (n > 18 && (v > INT64_MAX || n > 19))
			jinja_fail(L->e, TRAIN_JINJA_ESYNTAX, "integer literal too large");
		t->i = (int64_t)v;
	}
	L->pos = p;
}

static const char *const ops2[] = {"//", "**", "==", "!=", "<=", ">="};

/* Lex the inside of {{ }} or {% %} up to its end; returns after the end. */
static void lex_tag(lexer *L, int block)
{
	const char *s = L->src;
	int depth = 0;
	for (;;) {
		size_t p = L->pos;
		while (p < L->len && is_ws(s[p])) {
			L->line += s[p] == '\n';
			p++;
		}
		L->pos = p;
		if (p >= L->len)
			jinja_fail(L->e, TRAIN_JINJA_ESYNTAX, "unexpected end of template in a %s tag",
				   block ? "{% %}" : "{{ }}");
		char c = s[p];
		char close = block ? '%' : '}';
		if (depth == 0) {
			int sign = (c == '-' || (c == '+' && block)) ? 1 : 0;
			if (p + sign + 1 < L->len && s[p + sign] == close && s[p + sign + 1] == '}') {
				push_tok(L, block ? T_BEND : T_VEND, s + p, 2 + sign);
				p += sign + 2;
				if (c == '-') {
					while (p < L->len && is_ws(s[p]))
						L->line += s[p++] == '\n';
				} else if (block && !sign && p < L->len && s[p] == '\n') {
					L->line++;
					p++;
				}
				L->pos = p;
				return;
			}
		}
		if (c == '\'' || c == '"') {
			lex_string(L, c);
			continue;
		}
		if (c >= '0' && c <= '9') {
			lex_number(L);
			continue;
		}
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
			size_t q = p;
			while (q < L->len && ((s[q] >= 'a' && s[q] <= 'z') || (s[q] >= 'A' && s[q] <= 'Z') ||
					      (s[q] >= '0' && s[q] <= '9') || s[q] == '_'))
				q++;
			push_tok(L, T_NAME, s + p, q - p);
			L->pos = q;
			continue;
		}
		size_t n = 0;
		for (size_t k = 0; k < sizeof ops2 / sizeof *ops2; k++)
			if (p + 1 < L->len && s[p] == ops2[k][0] && s[p + 1] == ops2[k][1])
				n = 2;
		if (!n && strchr("+-*/%~[](){}<>=.:|,;", c) && c)
			n = 1;
		if (!n)
			jinja_fail(L->e, TRAIN_JINJA_ESYNTAX, "unexpected character '%c'", c);
		if (c == '(' || c == '[' || c == '{')
			depth++;
		else if ((c == ')' || c == ']' || c == '}') && depth > 0)
			depth--;
		push_tok(L, T_OP, s + p, n);
		L->pos = p + n;
	}
}

/* Text before a tag at k of kind ('{', '%', '#'), with the whitespace
 * control of sign ('-', '+' or 0) and lstrip_blocks applied. */
static void lex_text(lexer *L, size_t k, char kind, char sign, int line_starting)
{
	const char *t = L->src + L->pos;
	size_t n = k - L->pos;
	int line = L->line;
	count_lines(L, t, n);
	if (sign == '-') {
		while (n && is_ws(t[n - 1]))
			n--;
	} else if (sign != '+' && kind != '{') {
		size_t l = n;
		while (l && t[l - 1] != '\n')
			l--;
		if (l > 0 || line_starting) {
			size_t q = l;
			while (q < n && is_ws(t[q]))
				q++;
			if (q == n)
				n = l;
		}
	}
	if (n) {
		jtok *tk = push_tok(L, T_TEXT, t, n);
		tk->line = line;
	}
}

/* At p (after "{%" and its sign): "raw" then "%}" or "-%}"? Returns the
 * position after the tag (after the whitespace "-%}" strips), or 0. */
static size_t raw_begin(const lexer *L, size_t p)
{
	const char *s = L->src;
	while (p < L->len && is_ws(s[p]))
		p++;
	if (p + 3 > L->len || memcmp(s + p, "raw", 3))
		return 0;
	p += 3;
	while (p < L->len && is_ws(s[p]))
		p++;
	int strip = p < L->len && s[p] == '-';
	if (p + strip + 2 > L->len || memcmp(s + p + strip, "%}", 2))
		return 0;
	p += strip + 2;
	while (strip && p < L->len && is_ws(s[p]))
		p++;
	return p;
}

/* The body of {% raw %} from L->pos, as text, through its {% endraw %}. */
static void lex_raw(lexer *L)
{
	const char *s = L->src;
	for (size_t k = L->pos; k + 1 < L->len; k++) {
		if (s[k] != '{' || s[k + 1] != '%')
			continue;
		size_t p = k + 2;
		char sign = p < L->len && (s[p] == '-' || s[p] == '+') ? s[p] : 0;
		p += sign != 0;
		while (p < L->len && is_ws(s[p]))
			p++;
		if (p + 6 > L->len || memcmp(s + p, "endraw", 6))
			continue;
		p += 6;
		while (p < L->len && is_ws(s[p]))
			p++;
		char esign = p < L->len && (s[p] == '-' || s[p] == '+') ? s[p] : 0;
		if (p + (esign != 0) + 2 > L->len || memcmp(s + p + (esign != 0), "%}", 2))
			continue;
		size_t n = k - L->pos;
		if (sign == '-')
			while (n && is_ws(s[L->pos + n - 1]))
				n--;
		if (n) {
			jtok *t = push_tok(L, T_TEXT, s + L->pos, n);
			t->line = L->line;
		}
		p += (esign != 0) + 2;
		if (esign == '-')
			while (p < L->len && is_ws(s[p]))
				p++;
		else if (!esign && p < L->len && s[p] == '\n')
			p++;
		count_lines(L, s + L->pos, p - L->pos);
		L->pos = p;
		return;
	}
	jinja_fail(L->e, TRAIN_JINJA_ESYNTAX, "missing {%% endraw %%}");
}

/* Tokenise the (newline-normalised) source. */
static void lex(lexer *L)
{
	const char *s = L->src;
	int line_starting = 1;
	while (L->pos < L->len) {
		size_t k = L->pos;
		const char *hit = NULL;
		while ((hit = memchr(s + k, '{', L->len - k))) {
			k = (size_t)(hit - s);
			if (k + 1 < L->len && (s[k + 1] == '{' || s[k + 1] == '%' || s[k + 1] == '#'))
				break;
			k++;
			hit = NULL;
		}
		if (!hit) {
			jtok *tk = push_tok(L, T_TEXT, s + L->pos, L->len - L->pos);
			count_lines(L, s + L->pos, L->len - L->pos);
			(void)tk;
			break;
		}
		char kind = s[k + 1];
		char sign = k + 2 < L->len && (s[k + 2] == '-' || s[k + 2] == '+') ? s[k + 2] : 0;
		lex_text(L, k, kind, sign, line_starting);
		L->pos = k + 2 + (sign ? 1 : 0);
		L->e->line = L->line;
		size_t rb = kind == '%' ? raw_begin(L, L->pos) : 0;
		if (rb) {
			count_lines(L, s + L->pos, rb - L->pos);
			L->pos = rb;
			lex_raw(L);
		} else if (kind == '#') {
			const char *end = NULL;
			size_t q = L->pos;
			while (q + 1 < L->len) {
				if (s[q] == '#' && s[q + 1] == '}') {
					end = s + q;
					break;
				}
				q++;
			}
			if (!end)
				jinja_fail(L->e, TRAIN_JINJA_ESYNTAX, "missing end of comment tag");
			size_t p = q + 2;
			if (q > L->pos && s[q - 1] == '-') {
				while (p < L->len && is_ws(s[p]))
					p++;
			} else if (!(q > L->pos && s[q - 1] == '+') && p < L->len && s[p] == '\n') {
				p++;
			}
			count_lines(L, s + L->pos, p - L->pos);
			L->pos = p;
		} else {
			push_tok(L, kind == '{' ? T_VBEGIN : T_BBEGIN, s + k, 2);
			lex_tag(L, kind == '%');
		}
		line_starting = L->pos > 0 && s[L->pos - 1] == '\n';
	}
	push_tok(L, T_EOF, "", 0);
}

/* ---- parser ---- */

#define MAX_PARSE_DEPTH 200

typedef struct parser {
	jtok *t;
	size_t i, nt;
	jinja_arena *ar;
	jinja_err *e;
	int depth, loops;
} parser;

static jtok *cur(parser *P)
{
	return &P->t[P->i];
}

static void advance(parser *P)
{
	if (P->t[P->i].type != T_EOF)
		P->i++;
	P->e->line = P->t[P->i].line;
}

static int is_op(parser *P, const char *op)
{
	jtok *t = cur(P);
	return t->type == T_OP && t->n == strlen(op) && !memcmp(t->s, op, t->n);
}

static int is_name(parser *P, const char *nm)
{
	jtok *t = cur(P);
	return t->type == T_NAME && t->n == strlen(nm) && !memcmp(t->s, nm, t->n);
}

static const char *tok_desc(jtok *t)
{
	switch (t->type) {
	case T_EOF: return "end of template";
	case T_TEXT: return "text";
	case T_VBEGIN: return "'{{'";
	case T_VEND: return "'}}'";
	case T_BBEGIN: return "'{%'";
	case T_BEND: return "'%}'";
	case T_STR: return "a string";
	case T_INT: case T_FLOAT: return "a number";
	default: return NULL;
	}
}

static void __attribute__((noreturn)) unexpected(parser *P, const char *want)
{
	jtok *t = cur(P);
	P->e->line = t->line;
	const char *d = tok_desc(t);
	if (d)
		jinja_fail(P->e, TRAIN_JINJA_ESYNTAX, "expected %s, got %s", want, d);
	jinja_fail(P->e, TRAIN_JINJA_ESYNTAX, "expected %s, got '%.*s'", want, (int)t->n, t->s);
}

static void expect_op(parser *P, const char *op)
{
	if (!is_op(P, op)) {
		char w[16];
		snprintf(w, sizeof w, "'%s'", op);
		unexpected(P, w);
	}
	advance(P);
}

static void expect_type(parser *P, int type, const char *what)
{
	if (cur(P)->type != type)
		unexpected(P, what);
	advance(P);
}

static jtok *expect_name(parser *P)
{
	jtok *t = cur(P);
	if (t->type != T_NAME)
		unexpected(P, "a name");
	advance(P);
	return t;
}

static jnode *mk(parser *P, int kind, int line)
{
	jnode *n = jinja_zalloc(P->ar, sizeof *n);
	n->kind = (uint8_t)kind;
	n->line = line;
	return n;
}

/* growable node lists (in the arena) */
typedef struct nlist {
	jnode **a;
	size_t n, cap;
	const char **names;
	size_t *lens;
	jnode **vals;
	size_t nn, ncap;
} nlist;

static void nl_add(parser *P, nlist *l, jnode *x)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		jnode **na = jinja_alloc(P->ar, l->cap * sizeof *na);
		if (l->n)
			memcpy(na, l->a, l->n * sizeof *na);
		l->a = na;
	}
	l->a[l->n++] = x;
}

static void nl_add_name(parser *P, nlist *l, const char *s, size_t n, jnode *val)
{
	if (l->nn == l->ncap) {
		l->ncap = l->ncap ? l->ncap * 2 : 4;
		const char **nn = jinja_alloc(P->ar, l->ncap * sizeof *nn);
		size_t *nlen = jinja_alloc(P->ar, l->ncap * sizeof *nlen);
		jnode **nv = jinja_alloc(P->ar, l->ncap * sizeof *nv);
		if (l->nn) {
			memcpy(nn, l->names, l->nn * sizeof *nn);
			memcpy(nlen, l->lens, l->nn * sizeof *nlen);
			memcpy(nv, l->vals, l->nn * sizeof *nv);
		}
		l->names = nn;
		l->lens = nlen;
		l->vals = nv;
	}
	l->names[l->nn] = jinja_strndup(P->ar, s, n);
	l->lens[l->nn] = n;
	l->vals[l->nn++] = val;
}

static void nl_store(jnode *x, nlist *l)
{
	x->kids = l->a;
	x->nk = l->n;
	x->names = l->names;
	x->namelens = l->lens;
	x->vals = l->vals;
	x->nn = l->nn;
}

static jnode *parse_expr(parser *P);
static jnode *parse_or(parser *P);
static jnode *parse_unary(parser *P, int with_filter);
static jnode *parse_body(parser *P, const char *const *stop);

static void enter(parser *P)
{
	if (++P->depth > MAX_PARSE_DEPTH)
		jinja_fail(P->e, TRAIN_JINJA_ELIMIT, "expression nested too deeply");
}

/* ( args ) after the '(' was seen: positional and name=value arguments */
static void parse_args(parser *P, nlist *l)
{
	expect_op(P, "(");
	while (!is_op(P, ")")) {
		if (l->n || l->nn)
			expect_op(P, ",");
		if (is_op(P, ")"))
			break; /* trailing comma */
		if (cur(P)->type == T_NAME && P->t[P->i + 1].type == T_OP && P->t[P->i + 1].n == 1 &&
		    P->t[P->i + 1].s[0] == '=') {
			jtok *nm = cur(P);
			advance(P);
			advance(P);
			nl_add_name(P, l, nm->s, nm->n, parse_expr(P));
		} else {
			if (l->nn)
				jinja_fail(P->e, TRAIN_JINJA_ESYNTAX,
					   "positional argument after a keyword argument");
			nl_add(P, l, parse_expr(P));
		}
	}
	advance(P);
}

static jnode *parse_primary(parser *P)
{
	jtok *t = cur(P);
	int line = t->line;
	jnode *n;
	enter(P);
	switch (t->type) {
	case T_NAME:
		advance(P);
		n = mk(P, N_LIT, line);
		if ((t->n == 4 && (!memcmp(t->s, "true", 4) || !memcmp(t->s, "True", 4))))
			n->lit = jinja_bool(1);
		else if (t->n == 5 && (!memcmp(t->s, "false", 5) || !memcmp(t->s, "False", 5)))
			n->lit = jinja_bool(0);
		else if (t->n == 4 && (!memcmp(t->s, "none", 4) || !memcmp(t->s, "None", 4)))
			n->lit = jinja_none();
		else {
			n->kind = N_NAME;
			n->s = jinja_strndup(P->ar, t->s, t->n);
			n->sn = t->n;
		}
		break;
	case T_STR: {
		util_buf b = UTIL_BUF_INIT;
		while (cur(P)->type == T_STR) {
			util_buf_add(&b, cur(P)->s, cur(P)->n);
			advance(P);
		}
		n = mk(P, N_LIT, line);
		n->lit = jinja_str_ref(P->ar, jinja_strndup(P->ar, b.data ? b.data : "", b.len), b.len);
		util_buf_free(&b);
		break;
	}
	case T_INT:
		advance(P);
		n = mk(P, N_LIT, line);
		n->lit = jinja_int(P->ar, t->i);
		break;
	case T_FLOAT:
		advance(P);
		n = mk(P, N_LIT, line);
		n->lit = jinja_float(P->ar, t->f);
		break;
	case T_OP:
		if (is_op(P, "(")) {
			advance(P);
			nlist l = {0};
			int tuple = 0;
			while (!is_op(P, ")")) {
				if (l.n) {
					expect_op(P, ",");
					tuple = 1;
					if (is_op(P, ")"))
						break;
				}
				nl_add(P, &l, parse_expr(P));
			}
			advance(P);
			if (l.n == 1 && !tuple) {
				n = l.a[0];
			} else {
				n = mk(P, N_LIST, line);
				n->neg = 1; /* a tuple */
				nl_store(n, &l);
			}
			break;
		}
		if (is_op(P, "[") || is_op(P, "{")) {
			int dict = is_op(P, "{");
			const char *close = dict ? "}" : "]";
			advance(P);
			nlist l = {0};
			while (!is_op(P, close)) {
				if (l.n) {
					expect_op(P, ",");
					if (is_op(P, close))
						break;
				}
				nl_add(P, &l, parse_expr(P));
				if (dict) {
					expect_op(P, ":");
					nl_add(P, &l, parse_expr(P));
				}
			}
			advance(P);
			n = mk(P, dict ? N_DICT : N_LIST, line);
			nl_store(n, &l);
			break;
		}
		/* fall through */
	default:
		unexpected(P, "an expression");
	}
	P->depth--;
	return n;
}

static jnode *parse_subscript(parser *P, jnode *obj)
{
	int line = cur(P)->line;
	advance(P); /* [ */
	jnode *part[3] = {NULL, NULL, NULL};
	int slice = 0;
	for (int k = 0; k < 3; k++) {
		if (!is_op(P, ":") && !is_op(P, "]"))
			part[k] = parse_expr(P);
		if (k < 2 && is_op(P, ":")) {
			slice = 1;
			advance(P);
			continue;
		}
		break;
	}
	expect_op(P, "]");
	jnode *n;
	if (!slice) {
		if (!part[0])
			unexpected(P, "a subscript");
		n = mk(P, N_ITEM, line);
		n->a = obj;
		n->b = part[0];
		return n;
	}
	n = mk(P, N_SLICE, line);
	n->a = obj;
	n->kids = jinja_alloc(P->ar, 3 * sizeof *n->kids);
	memcpy(n->kids, part, sizeof part);
	n->nk = 3;
	return n;
}

static jnode *parse_postfix(parser *P, jnode *n)
{
	for (;;) {
		int line = cur(P)->line;
		if (is_op(P, ".")) {
			advance(P);
			jtok *t = cur(P);
			if (t->type == T_INT) {
				advance(P);
				jnode *x = mk(P, N_ITEM, line);
				x->a = n;
				x->b = mk(P, N_LIT, line);
				x->b->lit = jinja_int(P->ar, t->i);
				n = x;
				continue;
			}
			t = expect_name(P);
			jnode *x = mk(P, N_ATTR, line);
			x->a = n;
			x->s = jinja_strndup(P->ar, t->s, t->n);
			x->sn = t->n;
			n = x;
		} else if (is_op(P, "[")) {
			n = parse_subscript(P, n);
		} else if (is_op(P, "(")) {
			jnode *x = mk(P, N_CALL, line);
			nlist l = {0};
			parse_args(P, &l);
			nl_store(x, &l);
			x->a = n;
			n = x;
		} else {
			return n;
		}
	}
}

/* A filter's name and arguments (after its '|') applied to n. */
static jnode *parse_filter_call(parser *P, jnode *n, int line)
{
	jtok *t = expect_name(P);
	int id = jinja_filter_id(t->s, t->n);
	if (id < 0) {
		P->e->line = t->line;
		jinja_fail(P->e, TRAIN_JINJA_ESYNTAX, "unknown filter \"%.*s\"", (int)t->n, t->s);
	}
	jnode *x = mk(P, N_FILTER, line);
	nlist l = {0};
	if (is_op(P, "("))
		parse_args(P, &l);
	nl_store(x, &l);
	x->a = n;
	x->op = (uint8_t)id;
	return x;
}

static jnode *parse_filter_expr(parser *P, jnode *n)
{
	for (;;) {
		int line = cur(P)->line;
		if (is_op(P, "|")) {
			advance(P);
			n = parse_filter_call(P, n, line);
		} else if (is_name(P, "is")) {
			advance(P);
			jnode *x = mk(P, N_TEST, line);
			if (is_name(P, "not")) {
				advance(P);
				x->neg = 1;
			}
			jtok *t = expect_name(P);
			int id = jinja_test_id(t->s, t->n);
			if (id < 0) {
				P->e->line = t->line;
				jinja_fail(P->e, TRAIN_JINJA_ESYNTAX, "unknown test \"%.*s\"", (int)t->n, t->s);
			}
			x->op = (uint8_t)id;
			x->a = n;
			nlist l = {0};
			jtok *c = cur(P);
			if (is_op(P, "(")) {
				parse_args(P, &l);
			} else if ((c->type == T_NAME || c->type == T_STR || c->type == T_INT ||
				    c->type == T_FLOAT || is_op(P, "[") || is_op(P, "{")) &&
				   !is_name(P, "else") && !is_name(P, "or") && !is_name(P, "and")) {
				nl_add(P, &l, parse_postfix(P, parse_primary(P)));
			}
			nl_store(x, &l);
			n = x;
		} else if (is_op(P, "(")) {
			jnode *x = mk(P, N_CALL, line);
			nlist l = {0};
			parse_args(P, &l);
			nl_store(x, &l);
			x->a = n;
			n = x;
		} else {
			return n;
		}
	}
}

static jnode *parse_unary(parser *P, int with_filter)
{
	int line = cur(P)->line;
	jnode *n;
	enter(P);
	if (is_op(P, "-") || is_op(P, "+")) {
		int neg = is_op(P, "-");
		advance(P);
		n = mk(P, neg ? N_NEG : N_POS, line);
		n->a = parse_unary(P, 0);
	} else {
		n = parse_postfix(P, parse_primary(P));
	}
	if (with_filter)
		n = parse_filter_expr(P, n);
	P->depth--;
	return n;
}

static jnode *bin(parser *P, int op, jnode *a, jnode *b, int line)
{
	jnode *n = mk(P, N_BIN, line);
	n->op = (uint8_t)op;
	n->a = a;
	n->b = b;
	return n;
}

static jnode *parse_pow(parser *P)
{
	jnode *n = parse_unary(P, 1);
	while (is_op(P, "**")) {
		int line = cur(P)->line;
		advance(P);
		n = bin(P, OP_POW, n, parse_unary(P, 1), line);
	}
	return n;
}

static jnode *parse_math2(parser *P)
{
	jnode *n = parse_pow(P);
	for (;;) {
		int op = is_op(P, "*") ? OP_MUL : is_op(P, "/") ? OP_DIV : is_op(P, "//") ? OP_FLOORDIV
			: is_op(P, "%") ? OP_MOD : 0;
		if (!op)
			return n;
		int line = cur(P)->line;
		advance(P);
		n = bin(P, op, n, parse_pow(P), line);
	}
}

static jnode *parse_concat(parser *P)
{
	jnode *n = parse_math2(P);
	while (is_op(P, "~")) {
		int line = cur(P)->line;
		advance(P);
		n = bin(P, OP_CONCAT, n, parse_math2(P), line);
	}
	return n;
}

static jnode *parse_math1(parser *P)
{
	jnode *n = parse_concat(P);
	for (;;) {
		int op = is_op(P, "+") ? OP_ADD : is_op(P, "-") ? OP_SUB : 0;
		if (!op)
			return n;
		int line = cur(P)->line;
		advance(P);
		n = bin(P, op, n, parse_concat(P), line);
	}
}

static int cmp_op(parser *P)
{
	static const struct {
		const char *s;
		int op;
	} t[] = {{"==", OP_EQ}, {"!=", OP_NE}, {"<", OP_LT}, {"<=", OP_LE}, {">", OP_GT}, {">=", OP_GE}};
	for (size_t k = 0; k < sizeof t / sizeof *t; k++)
		if (is_op(P, t[k].s))
			return t[k].op;
	if (is_name(P, "in"))
		return OP_IN;
	if (is_name(P, "not") && P->t[P->i + 1].type == T_NAME && P->t[P->i + 1].n == 2 &&
	    !memcmp(P->t[P->i + 1].s, "in", 2))
		return OP_NOTIN;
	return 0;
}

static jnode *parse_compare(parser *P)
{
	int line = cur(P)->line;
	jnode *first = parse_math1(P);
	int op = cmp_op(P);
	if (!op)
		return first;
	nlist l = {0};
	nl_add(P, &l, first);
	size_t nops = 0, cap = 4;
	uint8_t *ops = jinja_alloc(P->ar, cap);
	while ((op = cmp_op(P))) {
		advance(P);
		if (op == OP_NOTIN)
			advance(P);
		if (nops == cap) {
			uint8_t *no = jinja_alloc(P->ar, cap * 2);
			memcpy(no, ops, cap);
			ops = no;
			cap *= 2;
		}
		ops[nops++] = (uint8_t)op;
		nl_add(P, &l, parse_math1(P));
	}
	jnode *n = mk(P, N_CMP, line);
	nl_store(n, &l);
	n->ops = ops;
	return n;
}

static jnode *parse_not(parser *P)
{
	if (is_name(P, "not")) {
		int line = cur(P)->line;
		advance(P);
		enter(P);
		jnode *n = mk(P, N_NOT, line);
		n->a = parse_not(P);
		P->depth--;
		return n;
	}
	return parse_compare(P);
}

static jnode *parse_and(parser *P)
{
	jnode *n = parse_not(P);
	while (is_name(P, "and")) {
		int line = cur(P)->line;
		advance(P);
		jnode *x = mk(P, N_AND, line);
		x->a = n;
		x->b = parse_not(P);
		n = x;
	}
	return n;
}

static jnode *parse_or(parser *P)
{
	jnode *n = parse_and(P);
	while (is_name(P, "or")) {
		int line = cur(P)->line;
		advance(P);
		jnode *x = mk(P, N_OR, line);
		x->a = n;
		x->b = parse_and(P);
		n = x;
	}
	return n;
}

static jnode *parse_expr(parser *P)
{
	enter(P);
	jnode *n = parse_or(P);
	while (is_name(P, "if")) {
		int line = cur(P)->line;
		advance(P);
		jnode *x = mk(P, N_COND, line);
		x->b = n;
		x->a = parse_or(P);
		if (is_name(P, "else")) {
			advance(P);
			x->c = parse_expr(P);
		}
		n = x;
	}
	P->depth--;
	return n;
}

/* ---- statements ---- */

static void end_tag(parser *P)
{
	expect_type(P, T_BEND, "'%}'");
}

/* After {% and a stop name: the name, then %}. */
static void close_tag(parser *P, const char *name)
{
	if (!is_name(P, name)) {
		char w[32];
		snprintf(w, sizeof w, "'%s'", name);
		unexpected(P, w);
	}
	advance(P);
	end_tag(P);
}

static jnode *parse_if(parser *P, int line)
{
	static const char *const stop[] = {"elif", "else", "endif", NULL};
	jnode *n = mk(P, N_IF, line);
	n->a = parse_expr(P);
	end_tag(P);
	n->b = parse_body(P, stop);
	if (is_name(P, "elif")) {
		int l2 = cur(P)->line;
		advance(P);
		n->c = parse_if(P, l2);
		return n;
	}
	if (is_name(P, "else")) {
		static const char *const stop2[] = {"endif", NULL};
		advance(P);
		end_tag(P);
		n->c = parse_body(P, stop2);
	}
	close_tag(P, "endif");
	return n;
}

static void parse_targets(parser *P, nlist *l)
{
	do {
		if (l->nn)
			advance(P); /* , */
		jtok *t = expect_name(P);
		nl_add_name(P, l, t->s, t->n, NULL);
	} while (is_op(P, ","));
}

static jnode *parse_for(parser *P, int line)
{
	static const char *const stop[] = {"else", "endfor", NULL};
	static const char *const stop2[] = {"endfor", NULL};
	jnode *n = mk(P, N_FOR, line);
	nlist l = {0};
	int paren = is_op(P, "(");
	if (paren)
		advance(P);
	parse_targets(P, &l);
	if (paren)
		expect_op(P, ")");
	nl_store(n, &l);
	if (!is_name(P, "in"))
		unexpected(P, "'in'");
	advance(P);
	n->a = parse_or(P); /* no inline if: `if` filters the loop */
	if (is_name(P, "if")) {
		advance(P);
		n->b = parse_expr(P);
	}
	if (is_name(P, "recursive"))
		jinja_fail(P->e, TRAIN_JINJA_ESYNTAX, "recursive loops are not supported");
	end_tag(P);
	P->loops++;
	n->c = parse_body(P, stop);
	P->loops--;
	if (is_name(P, "else")) {
		advance(P);
		end_tag(P);
		n->d = parse_body(P, stop2);
	}
	close_tag(P, "endfor");
	return n;
}

static jnode *parse_set(parser *P, int line)
{
	jtok *t = expect_name(P);
	jnode *n = mk(P, N_SET, line);
	nlist l = {0};
	nl_add_name(P, &l, t->s, t->n, NULL);
	if (is_op(P, ".")) {
		advance(P);
		jtok *a = expect_name(P);
		nl_add_name(P, &l, a->s, a->n, NULL);
		n->neg = 1; /* namespace attribute */
	} else {
		while (is_op(P, ",")) {
			advance(P);
			jtok *a = expect_name(P);
			nl_add_name(P, &l, a->s, a->n, NULL);
		}
	}
	nl_store(n, &l);
	if (is_op(P, "=")) {
		advance(P);
		jnode *v = parse_expr(P);
		if (is_op(P, ",")) {
			jnode *tu = mk(P, N_LIST, line);
			tu->neg = 1;
			nlist tl = {0};
			nl_add(P, &tl, v);
			while (is_op(P, ",")) {
				advance(P);
				nl_add(P, &tl, parse_expr(P));
			}
			nl_store(tu, &tl);
			v = tu;
		}
		n->a = v;
		end_tag(P);
		return n;
	}
	if (n->neg || l.nn != 1)
		unexpected(P, "'='");
	static const char *const stop[] = {"endset", NULL};
	end_tag(P);
	n->kind = N_SETBLOCK;
	n->b = parse_body(P, stop);
	close_tag(P, "endset");
	return n;
}

/* ( name [= default], ... ) of a macro or call block */
static void parse_params(parser *P, nlist *l)
{
	expect_op(P, "(");
	while (!is_op(P, ")")) {
		if (l->nn)
			expect_op(P, ",");
		jtok *t = expect_name(P);
		jnode *def = NULL;
		if (is_op(P, "=")) {
			advance(P);
			def = parse_expr(P);
		}
		nl_add_name(P, l, t->s, t->n, def);
	}
	advance(P);
}

static jnode *parse_macro(parser *P, int line)
{
	static const char *const stop[] = {"endmacro", NULL};
	jtok *t = expect_name(P);
	jnode *n = mk(P, N_MACRO, line);
	n->s = jinja_strndup(P->ar, t->s, t->n);
	n->sn = t->n;
	nlist l = {0};
	parse_params(P, &l);
	nl_store(n, &l);
	end_tag(P);
	int loops = P->loops;
	P->loops = 0;
	n->b = parse_body(P, stop);
	P->loops = loops;
	close_tag(P, "endmacro");
	return n;
}

static jnode *parse_callblock(parser *P, int line)
{
	static const char *const stop[] = {"endcall", NULL};
	jnode *n = mk(P, N_CALLBLOCK, line);
	nlist l = {0};
	if (is_op(P, "("))
		parse_params(P, &l);
	nl_store(n, &l);
	n->s = "caller";
	n->sn = 6;
	n->a = parse_expr(P);
	if (n->a->kind != N_CALL)
		jinja_fail(P->e, TRAIN_JINJA_ESYNTAX, "expected a call after {%% call %%}");
	end_tag(P);
	int loops = P->loops;
	P->loops = 0;
	n->b = parse_body(P, stop);
	P->loops = loops;
	close_tag(P, "endcall");
	return n;
}

/* One {% tag %} statement, after the {%. */
static jnode *parse_statement(parser *P)
{
	jtok *t = cur(P);
	int line = t->line;
	if (t->type != T_NAME)
		unexpected(P, "a tag name");
	advance(P);
#define IS(w) (t->n == sizeof w - 1 && !memcmp(t->s, w, t->n))
	if (IS("if"))
		return parse_if(P, line);
	if (IS("for"))
		return parse_for(P, line);
	if (IS("set"))
		return parse_set(P, line);
	if (IS("macro"))
		return parse_macro(P, line);
	if (IS("call"))
		return parse_callblock(P, line);
	if (IS("break") || IS("continue")) {
		if (!P->loops)
			jinja_fail(P->e, TRAIN_JINJA_ESYNTAX, "'%.*s' outside of a loop", (int)t->n, t->s);
		jnode *n = mk(P, IS("break") ? N_BREAK : N_CONTINUE, line);
		end_tag(P);
		return n;
	}
	if (IS("filter")) {
		static const char *const stop[] = {"endfilter", NULL};
		jnode *n = mk(P, N_FILTERBLOCK, line), *body = mk(P, N_NAME, line);
		body->s = "\1";
		body->sn = 1;
		n->a = parse_filter_expr(P, parse_filter_call(P, body, line));
		end_tag(P);
		n->b = parse_body(P, stop);
		close_tag(P, "endfilter");
		return n;
	}
	if (IS("generation")) {
		static const char *const stop[] = {"endgeneration", NULL};
		end_tag(P);
		jnode *n = parse_body(P, stop);
		close_tag(P, "endgeneration");
		return n;
	}
#undef IS
	P->e->line = line;
	jinja_fail(P->e, TRAIN_JINJA_ESYNTAX, "unknown tag \"%.*s\"", (int)t->n, t->s);
}

/* Statements up to {% STOP %} (left at STOP's name) or the end (stop NULL). */
static jnode *parse_body(parser *P, const char *const *stop)
{
	jnode *body = mk(P, N_BODY, cur(P)->line);
	nlist l = {0};
	enter(P);
	for (;;) {
		jtok *t = cur(P);
		if (t->type == T_EOF) {
			if (stop) {
				size_t k = 0;
				while (stop[k + 1])
					k++;
				P->e->line = t->line;
				jinja_fail(P->e, TRAIN_JINJA_ESYNTAX,
					   "unexpected end of template, expected {%% %s %%}", stop[k]);
			}
			break;
		}
		if (t->type == T_TEXT) {
			jnode *x = mk(P, N_TEXT, t->line);
			x->s = t->s;
			x->sn = t->n;
			nl_add(P, &l, x);
			advance(P);
		} else if (t->type == T_VBEGIN) {
			advance(P);
			jnode *x = mk(P, N_OUT, t->line);
			x->a = parse_expr(P);
			expect_type(P, T_VEND, "'}}'");
			nl_add(P, &l, x);
		} else if (t->type == T_BBEGIN) {
			advance(P);
			for (size_t k = 0; stop && stop[k]; k++)
				if (is_name(P, stop[k]))
					goto done;
			nl_add(P, &l, parse_statement(P));
		} else {
			unexpected(P, "text or a tag");
		}
	}
done:
	nl_store(body, &l);
	P->depth--;
	return body;
}

/* Newlines normalised to \n, one trailing newline dropped (Jinja2's
 * keep_trailing_newline=False). Returns the new text (caller frees). */
static char *normalise(const char *src, size_t len, size_t *out_len)
{
	char *s = xmalloc(len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (src[i] == '\r') {
			s[n++] = '\n';
			if (i + 1 < len && src[i + 1] == '\n')
				i++;
		} else {
			s[n++] = src[i];
		}
	}
	if (n && s[n - 1] == '\n')
		n--;
	s[n] = 0;
	*out_len = n;
	return s;
}

void jinja_parse(struct train_jinja *t, const char *src, size_t len, jinja_err *e)
{
	size_t n;
	/* the normalised copy is kept in the arena: text nodes point into it */
	char *norm = normalise(src, len, &n);
	char *s = jinja_strndup(&t->ar, norm, n);
	free(norm);
	lexer L = {s, n, 0, 1, NULL, 0, 0, &t->ar, e};
	e->line = 1;
	lex(&L);
	parser P = {L.toks, 0, L.nt, &t->ar, e, 0, 0};
	e->line = 1;
	t->root = parse_body(&P, NULL);
}
