/* test_import_stream.c: the pieces under the importer's file layer
 * (store/import_stream.h), table-driven, no database: the JSON array
 * splitter and the CSV/TSV reader (each input fed in pieces of every size,
 * so that a record split anywhere comes out the same), field paths, --map,
 * and the parser leaving out an empty completion. */
#include "store/import.h"
#include "store/import_stream.h"
#include "tests/tap.h"
#include "util/buf.h"
#include "util/xmalloc.h"
#include <stdlib.h>
#include <string.h>

/* ---- the splitter ------------------------------------------------------------------ */

/* Split in in pieces of step bytes: "LINE:elem\n" per element, then "!"
 * and the error when there is one. */
static char *split_all(const char *in, size_t step)
{
	store_jsplit s;
	util_buf out = UTIL_BUF_INIT;
	size_t n = strlen(in);
	int rc = 0;
	store_jsplit_init(&s);
	for (size_t off = 0; off < n && rc >= 0; off += step) {
		size_t len = n - off < step ? n - off : step, pos = 0;
		while (pos < len && (rc = store_jsplit_next(&s, in + off, len, &pos)) == 1)
			util_buf_addf(&out, "%ld:%s\n", s.elem_line, s.elem.data);
	}
	if (rc >= 0)
		rc = store_jsplit_finish(&s);
	if (rc < 0)
		util_buf_addf(&out, "!%ld: %s", s.line, s.err);
	store_jsplit_free(&s);
	return util_buf_detach(&out);
}

static void test_splitter(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"[]", ""},
		{" \n [ ] \n", ""},
		{"\xEF\xBB\xBF[{\"a\":1}]", "1:{\"a\":1}\n"},
		{"[{\"a\":1},{\"b\":[1,2,{\"c\":\"]\"}]}]", "1:{\"a\":1}\n1:{\"b\":[1,2,{\"c\":\"]\"}]}\n"},
		{"[\n  {\"a\": \"x,y\"},\n  {\"b\": \"q\\\"}\"}\n]\n", "2:{\"a\": \"x,y\"}\n3:{\"b\": \"q\\\"}\"}\n"},
		{"[\n{\"a\":\n\"\\\\\"},\n\n{}]", "2:{\"a\":\n\"\\\\\"}\n5:{}\n"},
		{"[1, \"s\", null]", "1:1\n1:\"s\"\n1:null\n"},
		{"[{\"a\":1}", "!1: the file ends inside the JSON array, after 0 complete elements"},
		{"[{\"a\":1},", "1:{\"a\":1}\n!1: the file ends inside the JSON array, after 1 complete element"},
		{"[{\"a\":[1}]", "!1: '}' where the JSON expects another closing bracket"},
		{"[{\"a\":1}] x", "1:{\"a\":1}\n!1: text after the end of the JSON array ('x')"},
		{"[{\"a\":1}]\n]", "1:{\"a\":1}\n!2: text after the end of the JSON array (']')"},
		{"[{\"a\":1},]", "1:{\"a\":1}\n!1: a ',' after the last element of the JSON array"},
		{"[,{}]", "!1: an empty element (',' with nothing before it) in the JSON array"},
		{"{\"a\":1}", "!1: expected a JSON array ('['), got '{'"},
		{"", "!1: no JSON array"},
		{"[{\"a\":1}}", "!1: unexpected '}' in the JSON array"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = strlen(cases[i].in);
		char *whole = split_all(cases[i].in, n ? n : 1);
		int same = 1;
		for (size_t step = 1; step < n && same; step++) {
			char *got = split_all(cases[i].in, step);
			same = !strcmp(got, whole);
			if (!same)
				tap_diag("in pieces of %zu: %s", step, got);
			free(got);
		}
		if (!strchr(cases[i].want, '!'))
			TAP_IS_STR(whole, cases[i].want, "split case %zu", i);
		else if (!TAP_OK(!strncmp(whole, cases[i].want, strlen(cases[i].want)), "split case %zu fails", i))
			tap_diag("got %s", whole);
		TAP_OK(same, "split case %zu: the same in pieces of every size", i);
		free(whole);
	}
	/* nesting deeper than the splitter keeps is an error, not a crash */
	util_buf deep = UTIL_BUF_INIT;
	util_buf_addc(&deep, '[');
	for (int i = 0; i < STORE_JSPLIT_MAXDEPTH + 1; i++)
		util_buf_addc(&deep, '[');
	char *got = split_all(deep.data, deep.len);
	TAP_OK(strstr(got, "nested more than") != NULL, "too deep: %s", got);
	free(got);
	util_buf_free(&deep);
}

/* ---- the CSV reader --------------------------------------------------------------------- */

/* Rows as "a|b|c\n" with their first line ("2:a|b\n"), then "!" and the
 * error. */
static char *csv_all(const char *in, char delim, size_t step)
{
	store_csv c;
	util_buf out = UTIL_BUF_INIT;
	size_t n = strlen(in);
	int rc = 0;
	store_csv_init(&c, delim);
	for (size_t off = 0; off < n && rc >= 0; off += step) {
		size_t len = n - off < step ? n - off : step, pos = 0;
		while (pos < len && rc >= 0) {
			rc = store_csv_next(&c, in + off, len, &pos);
			if (rc == 1) {
				util_buf_addf(&out, "%ld:", c.row_line);
				for (size_t f = 0; f < c.nfields; f++) {
					size_t flen;
					const char *v = store_csv_field(&c, f, &flen);
					util_buf_addf(&out, "%s%.*s", f ? "|" : "", (int)flen, v);
				}
				util_buf_addc(&out, '\n');
			}
		}
	}
	if (rc >= 0 && (rc = store_csv_finish(&c)) == 1) {
		util_buf_addf(&out, "%ld:", c.row_line);
		for (size_t f = 0; f < c.nfields; f++) {
			size_t flen;
			const char *v = store_csv_field(&c, f, &flen);
			util_buf_addf(&out, "%s%.*s", f ? "|" : "", (int)flen, v);
		}
		util_buf_addc(&out, '\n');
	}
	if (rc < 0)
		util_buf_addf(&out, "!%ld: %s", c.line, c.err);
	store_csv_free(&c);
	return util_buf_detach(&out);
}

static void test_csv(void)
{
	static const struct {
		char delim;
		const char *in, *want;
	} cases[] = {
		{',', "a,b,c\n1,2,3\n", "1:a|b|c\n2:1|2|3\n"},
		{',', "a,b\r\n1,2\r\n", "1:a|b\n2:1|2\n"},
		{',', "a,b\n1,2", "1:a|b\n2:1|2\n"},
		{',', "a,b\n\"x, y\",\"say \"\"hi\"\"\"\n", "1:a|b\n2:x, y|say \"hi\"\n"},
		{',', "a,b\n\"two\nlines\",\"cr\r\nlf\"\nnext,row\n", "1:a|b\n2:two\nlines|cr\r\nlf\n5:next|row\n"},
		{',', "a,,\n,,\n", "1:a||\n2:||\n"},
		{',', "a\n\n\"\"\n", "1:a\n2:\n3:\n"},
		{',', "a\rb,c\n", "1:a\rb|c\n"},
		{',', "\"\"\"\",x\n", "1:\"|x\n"},
		{',', "a,b\n1,x\"y\n", "1:a|b\n!2: column 2: a quote inside a field that does not start with one"},
		{',', "a,b\n\"1\"x,2\n", "1:a|b\n!2: column 1: text after the closing quote of a field"},
		{',', "a,b\n\"1\"\rx\n", "1:a|b\n!2: column 1: text after the closing quote of a field"},
		{',', "a,b\n1,\"open\nstill", "1:a|b\n!3: column 2: the quoted field is not closed at the end of the file (the row starts on line 2)"},
		{'\t', "a\tb\nsay \"hi\"\tx,y\n", "1:a|b\n2:say \"hi\"|x,y\n"},
		{'\t', "a\tb\n\"q\tq\"\t2\n", "1:a|b\n2:q\tq|2\n"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = strlen(cases[i].in);
		char *whole = csv_all(cases[i].in, cases[i].delim, n);
		int same = 1;
		for (size_t step = 1; step < n && same; step++) {
			char *got = csv_all(cases[i].in, cases[i].delim, step);
			same = !strcmp(got, whole);
			if (!same)
				tap_diag("in pieces of %zu: %s", step, got);
			free(got);
		}
		if (!strchr(cases[i].want, '!'))
			TAP_IS_STR(whole, cases[i].want, "csv case %zu", i);
		else if (!TAP_OK(!strncmp(whole, cases[i].want, strlen(cases[i].want)), "csv case %zu fails", i))
			tap_diag("got %s", whole);
		TAP_OK(same, "csv case %zu: the same in pieces of every size", i);
		free(whole);
	}
}

/* ---- field paths ---------------------------------------------------------------------------- */

static void test_paths(void)
{
	static const char *const doc = "{\"a\": {\"b\": [10, {\"c\": \"x\"}]}, \"choices\": [{\"turns\": [\"t0\", "
				       "\"t1\"]}], \"d.e\": 1, \"n\": null}";
	static const struct {
		const char *path, *want; /* the value printed, "!" + error, or "?" + why not found */
	} cases[] = {
		{"a.b[0]", "10"},
		{"a.b[1].c", "\"x\""},
		{"choices[0].turns[1]", "\"t1\""},
		{"n", "null"},
		{"a", "{\"b\":[10,{\"c\":\"x\"}]}"},
		{"a.b[2]", "?field path \"a.b[2]\" not found: \"a.b\" has no element 2"},
		{"a.x", "?field path \"a.x\" not found: \"a\" has no field \"x\""},
		{"q", "?field path \"q\" not found: no field \"q\""},
		{"a[0]", "?field path \"a[0]\" not found: \"a\" is not a list with element 0"},
		{"choices.turns", "?field path \"choices.turns\" not found: \"choices\" is not an object with \"turns\""},
		{"[0]", "?field path \"[0]\" not found: the record is not a list with element 0"},
		{"", "!an empty field path"},
		{"a..b", "!field path \"a..b\": a name is missing at character 3"},
		{"a.", "!field path \"a.\": a name is missing at character 3"},
		{".a", "!field path \".a\": a name is missing at character 1"},
		{"a[x]", "!field path \"a[x]\": expected a number after '[' at character 3"},
		{"a[1", "!field path \"a[1\": expected ']' at character 4"},
		{"a[-1]", "!field path \"a[-1]\": expected a number after '['"},
		{"a]b", "!field path \"a]b\": unexpected ']' at character 2"},
		{"a[0]b", "!field path \"a[0]b\": unexpected 'b' at character 5"},
	};
	cJSON *root = cJSON_Parse(doc);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		store_fpath p;
		char err[256] = "";
		util_buf why = UTIL_BUF_INIT;
		char *got;
		if (store_fpath_compile(cases[i].path, &p, err, sizeof err)) {
			got = xasprintf("!%s", err);
		} else {
			const cJSON *v = store_fpath_eval(&p, root, &why);
			got = v ? cJSON_PrintUnformatted(v) : xasprintf("?%s", util_buf_str(&why));
		}
		if (cases[i].want[0] == '!' && strlen(got) > strlen(cases[i].want))
			got[strlen(cases[i].want)] = '\0';
		TAP_IS_STR(got, cases[i].want, "path \"%s\"", cases[i].path);
		free(got);
		store_fpath_free(&p);
		util_buf_free(&why);
	}
	cJSON_Delete(root);
}

/* ---- maps ---------------------------------------------------------------------------------------- */

static void test_maps(void)
{
	static const struct {
		const char *spec, *rec, *want; /* mapped JSON, or "!" + error part */
	} cases[] = {
		{"prompt=instruction,completion=output,model=generator",
		 "{\"instruction\":\"Q\",\"output\":\"A\",\"generator\":\"m\",\"dataset\":\"d\"}",
		 "{\"dataset\":\"d\",\"prompt\":\"Q\",\"completions\":[{\"text\":\"A\",\"model\":\"m\"}]}"},
		{"prompt=q.text,chosen=pair[0],rejected=pair[1]", "{\"q\":{\"text\":\"Q\"},\"pair\":[\"A\",\"B\"]}",
		 "{\"q\":{\"text\":\"Q\"},\"pair\":[\"A\",\"B\"],\"prompt\":\"Q\",\"chosen\":\"A\",\"rejected\":\"B\"}"},
		{"prompt=meta.question", "{\"meta\":{\"question\":\"Q\",\"score_chosen\":1},\"chosen\":\"A\"}",
		 "{\"meta\":{\"question\":\"Q\",\"score_chosen\":1},\"chosen\":\"A\",\"prompt\":\"Q\"}"},
		{"completion=choices[0].turns[0],prompt=p", "{\"p\":\"Q\",\"choices\":[{\"turns\":[{\"content\":\"A\",\"token_len\":1}]}]}",
		 "{\"choices\":[{\"turns\":[{\"content\":\"A\",\"token_len\":1}]}],\"prompt\":\"Q\",\"completions\":[{\"text\":\"A\"}]}"},
		{"score_chosen=s1,score_rejected=s2", "{\"prompt\":\"Q\",\"chosen\":\"A\",\"rejected\":\"B\",\"s1\":\"8.5\",\"s2\":2}",
		 "{\"prompt\":\"Q\",\"chosen\":\"A\",\"rejected\":\"B\",\"score_chosen\":8.5,\"score_rejected\":2}"},
		{"prompt=instruction,completion=output", "{\"instruction\":\"Q\"}", "!field path \"output\" not found: no field \"output\""},
		{"prompt=instruction", "[1]", "[1]"},
		{"prompt=instruction", "{\"instruction\":\"a\\u0000b\"}", "{\"instruction\":\"a\\u0000b\"}"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		store_import_map *m = NULL;
		char err[512];
		int kind;
		util_buf out = UTIL_BUF_INIT, why = UTIL_BUF_INIT;
		TAP_IS_INT(store_import_map_new(cases[i].spec, NULL, NULL, &m, &kind, err, sizeof err), 0, "map %zu made", i);
		const char *rec = cases[i].rec;
		int rc = m ? store__map_apply(m, rec, strlen(rec), &out, &why) : -2;
		const char *got = rc == 0 ? util_buf_str(&out) : rc == 1 ? rec : util_buf_str(&why);
		if (cases[i].want[0] == '!')
			TAP_OK(rc == -1 && strstr(got, cases[i].want + 1), "map %zu fails: %s (got %s)", i, cases[i].want + 1,
			       got);
		else
			TAP_IS_STR(got, cases[i].want, "map %zu", i);
		store_import_map_free(m);
		util_buf_free(&out);
		util_buf_free(&why);
	}
	static const struct {
		const char *spec, *want;
	} bad[] = {
		{"bogus=x", "--map: unknown field \"bogus\""},
		{"prompt", "--map: expected FIELD=PATH, got \"prompt\""},
		{"prompt=a,prompt=b", "--map: field \"prompt\" is mapped twice"},
		{"model=m", "--map: \"model\" names the model of \"completion\", which is not mapped"},
		{"prompt=join:q", "needs --join FILE"},
		{"prompt=a..b", "a name is missing"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		store_import_map *m = NULL;
		char err[512] = "";
		int kind = 0;
		int rc = store_import_map_new(bad[i].spec, NULL, NULL, &m, &kind, err, sizeof err);
		TAP_OK(rc == -1 && !m && kind == STORE_IMPORT_MAP_USAGE && strstr(err, bad[i].want),
		       "bad map \"%s\": %s (got %s)", bad[i].spec, bad[i].want, err);
	}
}

/* ---- an empty completion is left out -------------------------------------------------------------- */

static void test_dropped(void)
{
	const char *line = "{\"prompt\":\"Q\",\"completions\":[{\"text\":\"\",\"model\":\"m1\"},\"B\",\"\"]}";
	store_import_parser *p = store_import_parser_new(STORE_IMPORT_CANDIDATES);
	store_record rec;
	const char *why;
	TAP_IS_INT(store_import_parse(p, line, strlen(line), &rec), STORE_OK, "a record with two empty completions parses");
	TAP_IS_INT((int)rec.ncompletions, 1, "one completion kept");
	TAP_IS_INT(store_import_parser_dropped(p, &why), 2, "two left out");
	TAP_IS_STR(why, "field \"completions[0]\" of model m1, field \"completions[2]\" are empty: not imported "
			"(the rest of the record was)", "which, and why");
	line = "{\"prompt\":\"Q\",\"completions\":[\"A\"]}";
	TAP_IS_INT(store_import_parse(p, line, strlen(line), &rec), STORE_OK, "the next record");
	TAP_IS_INT(store_import_parser_dropped(p, &why), 0, "nothing left out of it");
	TAP_IS_STR(why, "", "and no reason");
	store_import_parser_free(p);
}

int main(void)
{
	test_splitter();
	test_csv();
	test_paths();
	test_maps();
	test_dropped();
	return tap_done();
}
