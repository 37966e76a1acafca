/* jinja_int.h: internals shared by the Jinja parser (jinja_parse.c) and
 * evaluator (jinja.c); not part of the library's interface.
 *
 * Memory: the syntax tree lives in the template's arena, every value of a
 * rendering in the rendering's arena; nothing is freed one by one, the
 * arenas go as a whole. Errors: jinja_fail() records the message and
 * longjmps to the jmp_buf of the parse or render call, which frees its
 * arena; so no partial state survives an error. */
#ifndef DPO_TRAIN_JINJA_INT_H
#define DPO_TRAIN_JINJA_INT_H
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

typedef struct jinja_err {
	jmp_buf jb;
	char *msg;        /* set by jinja_fail (malloc'd) */
	int code;         /* TRAIN_JINJA_* */
	int line;         /* the line being parsed or evaluated */
	const char *name; /* the template's name */
} jinja_err;

/* Record "name:line: message" and jump to e->jb. */
void jinja_fail(jinja_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

typedef struct jinja_chunk jinja_chunk;
typedef struct jinja_arena {
	jinja_chunk *head;
	size_t total, limit; /* bytes taken; limit 0: none */
	jinja_err *err;      /* where an exceeded limit is reported */
} jinja_arena;

/* n bytes (16-aligned, uninitialised) from the arena; over the limit fails. */
void *jinja_alloc(jinja_arena *a, size_t n);
/* n zeroed bytes. */
void *jinja_zalloc(jinja_arena *a, size_t n);
/* A NUL-terminated copy of n bytes. */
char *jinja_strndup(jinja_arena *a, const char *s, size_t n);
/* Free every chunk. */
void jinja_arena_free(jinja_arena *a);

/* syntax tree */
enum jinja_kind {
	/* expressions */
	N_LIT = 1, /* lit */
	N_NAME,    /* s */
	N_ATTR,    /* a . s */
	N_ITEM,    /* a [ b ] */
	N_SLICE,   /* a [ kids[0] : kids[1] : kids[2] ] (NULL parts absent) */
	N_CALL,    /* a ( kids, names = vals ) */
	N_FILTER,  /* a | op ( kids, names = vals ) */
	N_TEST,    /* a is [not: neg] op kids */
	N_NEG,     /* - a */
	N_POS,     /* + a */
	N_NOT,     /* not a */
	N_AND,     /* a and b */
	N_OR,      /* a or b */
	N_BIN,     /* a op b: + - * / // % ** ~ */
	N_CMP,     /* kids[0] ops[0] kids[1] ops[1] ... (chained) */
	N_COND,    /* b if a else c */
	N_LIST,    /* [ kids ] (also tuples) */
	N_DICT,    /* { kids[2i]: kids[2i+1] } */
	/* statements */
	N_BODY,     /* kids in order */
	N_TEXT,     /* s */
	N_OUT,      /* {{ a }} */
	N_IF,       /* if a: b else c */
	N_FOR,      /* for names in a [if b]: c else d */
	N_SET,      /* set names[0] (or names[0].names[1] when nn == 2 and neg) = a */
	N_SETBLOCK, /* set names[0]: body b */
	N_MACRO,    /* macro s(names = vals): body b */
	N_CALLBLOCK, /* call(names = vals) a: body b */
	N_BREAK,
	N_CONTINUE,
	N_FILTERBLOCK, /* filter a (filters over the name "\1", the body's text): body b */
};

/* operators of N_BIN and N_CMP */
enum { OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT,
       OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN };

struct jv;
typedef struct jnode jnode;
struct jnode {
	uint8_t kind, op, neg;
	int line;
	jnode *a, *b, *c, *d;
	jnode **kids;
	size_t nk;
	const char **names; /* targets, parameters, keyword names */
	size_t *namelens;
	jnode **vals;       /* defaults / keyword values (NULL: none), one per name */
	size_t nn;
	uint8_t *ops;       /* N_CMP */
	const char *s;
	size_t sn;
	struct jv *lit;
};

/* filters and tests (ids resolved when parsing) */
int jinja_filter_id(const char *name, size_t n);
int jinja_test_id(const char *name, size_t n);

/* values */
enum jinja_type { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_NS, V_MACRO,
		  V_FUNC, V_METHOD };

typedef struct jscope jscope;
typedef struct jv jv;
struct jv {
	uint8_t t;
	uint8_t tuple; /* V_LIST: 1 a Python tuple (repr only), 2 a generator (JX_GEN) */
	union {
		int64_t i;
		double f;
		struct {
			const char *s;
			size_t n;
		} s;
		struct {
			jv **a;
			size_t n, cap;
		} l;
		struct {
			jv **k, **v;
			size_t n, cap;
		} d;
		struct {
			const jnode *node; /* N_MACRO or N_CALLBLOCK */
			jscope *closure;
		} m;
		struct {
			jv *self;
			const char *name;
			int id;
		} fn; /* V_FUNC: id; V_METHOD: self.name */
		struct {
			const char *what;  /* for messages: "'x' is undefined", or NULL: */
			const char *tname; /* "'TNAME object' has no attribute 'S'" */
			const char *s;     /* (without tname: "'S' is undefined") */
			size_t n;
		} u;
	} u;
};

/* A string value of n bytes at s (not copied: s must live as long as the
 * arena a, or longer). */
jv *jinja_str_ref(jinja_arena *a, const char *s, size_t n);
/* Literals made when parsing (in the template's arena). */
jv *jinja_int(jinja_arena *a, int64_t i);
jv *jinja_float(jinja_arena *a, double f);
jv *jinja_bool(int b);
jv *jinja_none(void);

/* The parsed template. */
struct train_jinja {
	jinja_arena ar;
	jnode *root;
	char *name;
};

/* Parse src (len bytes) into t->root; fails through e. */
void jinja_parse(struct train_jinja *t, const char *src, size_t len, jinja_err *e);

#endif
