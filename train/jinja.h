/* jinja.h: a Jinja2 interpreter for Hugging Face chat templates (library
 * train/libtok.a).
 *
 * It implements the subset of Jinja2 that chat templates use, in the
 * environment transformers' apply_chat_template renders them with:
 * trim_blocks and lstrip_blocks on, the loop controls (break, continue),
 * autoescape off, undefined variables as jinja2.Undefined (empty when
 * printed, false when tested, an error when used otherwise), `tojson` as
 * transformers defines it (json.dumps with ensure_ascii=False, indent,
 * separators, sort_keys) and the globals raise_exception(msg) and
 * strftime_now(fmt) besides range, namespace and dict.
 *
 * Statements: if/elif/else, for (loop variables and loop.cycle, `if`
 * filter, else, break/continue), set (also of a namespace attribute, and
 * the block form), macro (with defaults) and call blocks (caller()),
 * filter blocks, raw blocks, generation blocks (rendered as their body),
 * comments and whitespace control (-, +). Not supported: recursive loops,
 * template inheritance and includes, string formatting (% and .format).
 * Expressions: literals (strings, numbers, lists, dicts, tuples), names,
 * attributes, subscripts and slices, calls with keyword arguments, filters,
 * tests, inline if, arithmetic, ~, comparisons, in / not in, and/or/not,
 * and the string and dict methods templates call (startswith, split,
 * strip, replace, items, get, ...).
 *
 * Rendering is bounded: memory, loop iterations and call depth have limits
 * (train_jinja_opts) whose excess is an error, never a crash.
 */
#ifndef DPO_TRAIN_JINJA_H
#define DPO_TRAIN_JINJA_H
#include <stddef.h>
#include <time.h>

#include <cjson/cJSON.h>

enum {
	TRAIN_JINJA_ESYNTAX = -2, /* the template does not parse */
	TRAIN_JINJA_ERENDER = -3, /* an error while rendering (undefined use, type error) */
	TRAIN_JINJA_ERAISE = -4,  /* the template called raise_exception(msg) */
	TRAIN_JINJA_ELIMIT = -5,  /* a memory, iteration or depth limit was reached */
};

typedef struct train_jinja train_jinja;

/* Rendering options; a zeroed struct (or NULL) gives the defaults. */
typedef struct train_jinja_opts {
	const struct tm *now;  /* the time strftime_now formats; NULL: the current local time */
	size_t max_memory;     /* bytes of values and output; 0: 256 MiB */
	size_t max_iterations; /* loop iterations (and range items) in one rendering; 0: 10 million */
	int max_depth;         /* nested macro calls; 0: 100 */
} train_jinja_opts;

/* Parse the len bytes of src (a template; UTF-8) called name (used in
 * messages: "name:LINE: ..."). Returns a new template (free with
 * train_jinja_free), or NULL with the message in *err (caller frees; err
 * may be NULL). Unknown filters and tests are errors here, as in Jinja2. */
train_jinja *train_jinja_parse(const char *src, size_t len, const char *name, char **err);

/* Render t with the variables of the JSON object vars (NULL: none) into a
 * new string *out (caller frees). Returns 0, or a negative TRAIN_JINJA_*
 * code with *out NULL and the message in *err (caller frees; err may be
 * NULL): "name:LINE: what", for raise_exception "name:LINE: MSG" with the
 * template's own MSG. t may be rendered by several threads at once. */
int train_jinja_render(const train_jinja *t, const cJSON *vars, const train_jinja_opts *opts,
		       char **out, char **err);

/* Free a template. NULL is allowed. */
void train_jinja_free(train_jinja *t);

#endif
