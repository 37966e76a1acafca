/* test_import.c: the import parser layer (store/import.h), table-driven, no
 * database. In the table, JSON lines are written with ' for " so that they
 * stay readable; each expected result is a dump of the record (see dump())
 * or "!" followed by a part of the expected error message. */
#include "store/import.h"
#include "tests/tap.h"
#include "util/buf.h"
#include "util/utf8.h"
#include "util/xmalloc.h"
#include <stdlib.h>
#include <string.h>

/* "T:text" or "M:role:content/role:content", then " # C:" completions
 * (text[@model] separated by |) and " # L:" labels (a>b:verdict,...).
 * Newlines print as \n. */
static void add_esc(util_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\n')
			util_buf_adds(b, "\\n");
		else
			util_buf_addc(b, *s);
	}
}

static char *dump(const store_record *r)
{
	util_buf b = UTIL_BUF_INIT;
	if (r->prompt_text) {
		util_buf_adds(&b, "T:");
		add_esc(&b, r->prompt_text);
	} else {
		util_buf_adds(&b, "M:");
		for (size_t i = 0; i < r->nmessages; i++) {
			util_buf_addf(&b, "%s%s:", i ? "/" : "", r->messages[i].role);
			add_esc(&b, r->messages[i].content);
		}
	}
	if (r->ncompletions) {
		util_buf_adds(&b, " # C:");
		for (size_t i = 0; i < r->ncompletions; i++) {
			if (i)
				util_buf_addc(&b, '|');
			add_esc(&b, r->completions[i].text);
			if (r->completions[i].model)
				util_buf_addf(&b, "@%s", r->completions[i].model);
		}
	}
	if (r->nlabels) {
		util_buf_adds(&b, " # L:");
		for (size_t i = 0; i < r->nlabels; i++)
			util_buf_addf(&b, "%s%d>%d:%s", i ? "," : "", r->labels[i].a, r->labels[i].b,
				      r->labels[i].verdict);
	}
	return util_buf_detach(&b);
}

static char *quotes(const char *s)
{
	char *t = xstrdup(s);
	for (char *q = t; *q; q++)
		if (*q == '\'')
			*q = '"';
	return t;
}

typedef struct tcase {
	store_import_format fmt;
	const char *line;
	const char *want; /* dump, or "!error part" */
	const char *variant; /* expected variant on success, or NULL */
} tcase;

#define A STORE_IMPORT_AUTO
#define TRL STORE_IMPORT_TRL
#define HH STORE_IMPORT_HH
#define UF STORE_IMPORT_ULTRAFEEDBACK
#define SG STORE_IMPORT_SHAREGPT
#define PR STORE_IMPORT_PROMPTS
#define CA STORE_IMPORT_CANDIDATES

static const tcase cases[] = {
	/* ---- TRL */
	{A, "{'prompt':'Q','chosen':'A','rejected':'B'}", "T:Q # C:A|B # L:0>1:a", "trl (standard)"},
	{TRL, "{'prompt':'Q','chosen':'A','rejected':'B','extra':[1,2]}", "T:Q # C:A|B # L:0>1:a", NULL},
	{A, "{'prompt':[{'role':'system','content':'S'},{'role':'user','content':'Q'}],"
	    "'chosen':[{'role':'assistant','content':'A'}],'rejected':[{'role':'assistant','content':'B'}]}",
	 "M:system:S/user:Q # C:A|B # L:0>1:a", "trl (conversational)"},
	{A, "{'chosen':[{'role':'user','content':'Q'},{'role':'assistant','content':'A'}],"
	    "'rejected':[{'role':'user','content':'Q'},{'role':'assistant','content':'B'}]}",
	 "M:user:Q # C:A|B # L:0>1:a", "trl (implicit prompt)"},
	{A, "{'chosen':[{'role':'user','content':'Q'},{'role':'assistant','content':'x'},{'role':'user','content':'R'},{'role':'assistant','content':'A'}],"
	    "'rejected':[{'role':'user','content':'Q'},{'role':'assistant','content':'x'},{'role':'user','content':'R'},{'role':'assistant','content':'B'}]}",
	 "M:user:Q/assistant:x/user:R # C:A|B # L:0>1:a", NULL},
	{TRL, "{'chosen':[{'role':'user','content':'Q'},{'role':'assistant','content':'A'}],"
	      "'rejected':[{'role':'user','content':'P'},{'role':'assistant','content':'B'}]}",
	 "!the prompts of \"chosen\" and \"rejected\" differ (message 0)", NULL},
	{TRL, "{'chosen':[{'role':'user','content':'Q'},{'role':'assistant','content':'A'}],"
	      "'rejected':[{'role':'assistant','content':'B'}]}",
	 "!field \"rejected\" must be a whole conversation like \"chosen\"", NULL},
	{TRL, "{'prompt':'Q','chosen':[{'role':'user','content':'A'}],'rejected':'B'}",
	 "!field \"chosen\" must be a string or an assistant message", NULL},
	{TRL, "{'chosen':[{'role':'user','content':'Q'},{'role':'user','content':'A'}],"
	      "'rejected':[{'role':'user','content':'Q'},{'role':'assistant','content':'B'}]}",
	 "!field \"chosen\" must end with an assistant message", NULL},
	{TRL, "{'prompt':'Q','chosen':5,'rejected':'B'}", "!field \"chosen\" must be a string or a list of messages", NULL},
	{TRL, "{'prompt':'Q','chosen':'A'}", "!field \"rejected\" is missing", NULL},
	{TRL, "{'prompt':'Q','chosen':'A','rejected':null}", "!field \"rejected\" is missing", NULL},
	{TRL, "{'prompt':'Q','chosen':'A','rejected':'A'}", "!chosen and rejected are identical", NULL},
	{TRL, "{'prompt':'Q','chosen':'','rejected':'B'}", "!field \"chosen\" is empty", NULL},
	{TRL, "{'prompt':'','chosen':'A','rejected':'B'}", "!field \"prompt\" is empty", NULL},
	{TRL, "{'prompt':{},'chosen':'A','rejected':'B'}", "!field \"prompt\" must be a string or a list of messages", NULL},
	{TRL, "{'chosen':'A','rejected':'B'}", "!field \"prompt\" is missing", NULL},
	{TRL, "{'prompt':[{'role':'tool','content':'Q'}],'chosen':'A','rejected':'B'}",
	 "!field \"prompt[0].role\" must be \"system\", \"user\" or \"assistant\" (or \"human\", \"gpt\"), got \"tool\"", NULL},
	{TRL, "{'prompt':[{'role':'user'}],'chosen':'A','rejected':'B'}", "!field \"prompt[0].content\" is missing", NULL},
	{TRL, "{'prompt':[{'content':'Q'}],'chosen':'A','rejected':'B'}", "!field \"prompt[0]\" must have a \"role\"", NULL},
	{TRL, "{'prompt':[5],'chosen':'A','rejected':'B'}", "!field \"prompt[0]\" must be a message object", NULL},
	{TRL, "{'prompt':[],'chosen':'A','rejected':'B'}", "!field \"prompt\" must not be empty", NULL},
	{TRL, "{'prompt':[{'role':'user','content':[{'type':'text','text':'Hel'},{'type':'text','text':'lo'}]}],'chosen':'A','rejected':'B'}",
	 "M:user:Hello # C:A|B # L:0>1:a", NULL},
	{TRL, "{'prompt':[{'role':'user','content':[{'type':'image'}]}],'chosen':'A','rejected':'B'}",
	 "!field \"prompt[0].content[0]\" must be a text part", NULL},
	{TRL, "{'prompt':[{'role':'user','content':7}],'chosen':'A','rejected':'B'}",
	 "!field \"prompt[0].content\" must be a string or a list of text parts", NULL},

	/* ---- duplicate keys: an error naming the key (cJSON would keep the
	 * first value, Python's json the last) */
	{A, "{'prompt':'Q','chosen':'A','rejected':'B','chosen':'C'}",
	 "!duplicate key \"chosen\" in one object", NULL},
	{TRL, "{'prompt':[{'role':'user','content':'Q','content':'R'}],'chosen':'A','rejected':'B'}",
	 "!duplicate key \"content\" in one object", NULL},
	{TRL, "{'a1':1,'a2':1,'a3':1,'a4':1,'a5':1,'a6':1,'a7':1,'a8':1,'a9':1,'b1':1,'b2':1,'b3':1,'b4':1,"
	      "'b5':1,'b6':1,'b7':{'x':1},'prompt':'Q','chosen':'A','rejected':'B','a7':2}",
	 "!duplicate key \"a7\" in one object", NULL},
	{TRL, "{'prompt':'Q','chosen':'A','rejected':'B','x':{'k':1,'K':2,'k ':3}}", "T:Q # C:A|B # L:0>1:a", NULL},

	/* ---- KTO (binary feedback) is a format of its own (more in kcases) */
	{A, "{'prompt':'Q','completion':'A','label':true}", "T:Q # C:A", "kto (trl)"},
	{TRL, "{'prompt':'Q','completion':'A','label':false}", "!field \"chosen\" is missing", NULL},
	{A, "{'messages':[{'role':'user','content':'Q'},{'role':'assistant','content':'A'}],'kto_tag':true}",
	 "M:user:Q # C:A", "kto (llama-factory)"},
	{PR, "{'prompt':'Q','completion':'A','label':true}", "T:Q", NULL},
	{A, "{'prompt':'Q','completion':'A','label':'good'}", "T:Q", "prompts"},

	/* ---- HH-RLHF */
	{A, "{'chosen':'\\n\\nHuman: Hi\\n\\nAssistant: Yo','rejected':'\\n\\nHuman: Hi\\n\\nAssistant: No'}",
	 "T:\\n\\nHuman: Hi\\n\\nAssistant: # C: Yo| No # L:0>1:a", "hh"},
	{A, "{'chosen':'\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant:  two spaces',"
	    "'rejected':'\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant:no space'}",
	 "T:\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant: # C:  two spaces|no space # L:0>1:a", "hh"},
	{HH, "{'chosen':'\\n\\nHuman: Hi\\n\\nAssistant: Yo','rejected':'\\n\\nHuman: Hey\\n\\nAssistant: No'}",
	 "!the prompts of \"chosen\" and \"rejected\" differ (from byte 11 on)", NULL},
	{HH, "{'chosen':'\\n\\nHuman: Hi\\n\\nAssistant: ','rejected':'\\n\\nHuman: Hi\\n\\nAssistant: No'}",
	 "!the final response of \"chosen\" is empty", NULL},
	{HH, "{'chosen':'\\n\\nHuman: Hi\\n\\nAssistant: Yo','rejected':'\\n\\nHuman: Hi\\n\\nAssistant:'}",
	 "!the final response of \"rejected\" is empty", NULL},
	{HH, "{'chosen':'\\n\\nHuman: Hi','rejected':'\\n\\nHuman: Hi\\n\\nAssistant: No'}",
	 "!field \"chosen\" has no \"\\n\\nAssistant:\" turn", NULL},
	{HH, "{'chosen':'Hi\\n\\nAssistant: Yo','rejected':'\\n\\nHuman: Hi\\n\\nAssistant: No'}",
	 "!field \"chosen\" must start with \"\\n\\nHuman:\"", NULL},
	{HH, "{'chosen':['x'],'rejected':'\\n\\nHuman: Hi\\n\\nAssistant: No'}", "!field \"chosen\" must be a string", NULL},
	{HH, "{'chosen':'\\n\\nHuman: Hi\\n\\nAssistant: No','rejected':'\\n\\nHuman: Hi\\n\\nAssistant: No'}",
	 "!chosen and rejected are identical", NULL},
	{HH, "{'rejected':'\\n\\nHuman: Hi\\n\\nAssistant: No'}", "!field \"chosen\" is missing", NULL},

	/* ---- UltraFeedback binarized */
	{A, "{'prompt':'Q','chosen':'A','rejected':'B','metadata':{'score_chosen':8.5,'score_rejected':8.5}}",
	 "T:Q # C:A|B # L:0>1:tie", "ultrafeedback (binarized)"},
	{A, "{'prompt':'Q','chosen':'A','rejected':'B','score_chosen':9,'score_rejected':3}", "T:Q # C:A|B # L:0>1:a", NULL},
	{UF, "{'prompt':'Q','chosen':'A','rejected':'B','score_chosen':2,'score_rejected':3}", "T:Q # C:A|B # L:0>1:b", NULL},
	{UF, "{'prompt':'Q','chosen':'A','rejected':'B'}", "T:Q # C:A|B # L:0>1:a", NULL},
	{A, "{'prompt':'Q','chosen':[{'role':'user','content':'Q'},{'role':'assistant','content':'A'}],"
	    "'rejected':[{'role':'user','content':'Q'},{'role':'assistant','content':'B'}],'score_chosen':7.0,'score_rejected':6.0}",
	 "T:Q # C:A|B # L:0>1:a", NULL},
	{UF, "{'prompt':'Q','chosen':[{'role':'user','content':'Z'},{'role':'assistant','content':'A'}],"
	     "'rejected':[{'role':'user','content':'Z'},{'role':'assistant','content':'B'}],'score_chosen':7.0,'score_rejected':6.0}",
	 "!field \"prompt\" does not match the conversation in \"chosen\"", NULL},
	{UF, "{'prompt':'Q','chosen':'A','rejected':'B','score_chosen':'9','score_rejected':3}",
	 "!field \"score_chosen\" must be a number", NULL},
	{UF, "{'prompt':'Q','chosen':'A','rejected':'B','score_chosen':9}", "!field \"score_rejected\" is missing", NULL},
	{UF, "{'prompt':'Q','chosen':'A','rejected':'B','score_chosen':9,'score_rejected':1e999}",
	 "!field \"score_rejected\" must be a number", NULL},
	{UF, "{'instruction':'Q','completions':[{'response':'R0','ratings':['nan','inf',3]},{'response':'R1','ratings':[3]}]}",
	 "T:Q # C:R0|R1 # L:0>1:tie", NULL},
	{UF, "{'prompt':'Q','chosen':'A','rejected':'A','score_chosen':9,'score_rejected':3}",
	 "!chosen and rejected are identical", NULL},

	/* ---- UltraFeedback raw */
	{A, "{'instruction':'Q','completions':["
	    "{'model':'m0','response':'R0','annotations':{'helpfulness':{'Rating':'4','Rationale':'r'},'honesty':{'Rating':'5'}}},"
	    "{'model':'m1','response':'R1','annotations':{'helpfulness':{'Rating':'3'},'honesty':{'Rating':'N/A'}}},"
	    "{'model':'m2','response':'R2','ratings':{'a':4,'b':5}}]}",
	 "T:Q # C:R0@m0|R1@m1|R2@m2 # L:0>1:a,0>2:tie,1>2:b", "ultrafeedback (raw)"},
	{UF, "{'instruction':'Q','completions':[{'response':'R0','annotations':{'h':[{'Rating':'2'},{'Rating':4}],'t':'5'}},"
	     "{'response':'R1','annotations':{'h':{'Rating':'N/A'}},'overall_score':1}]}",
	 "T:Q # C:R0|R1 # L:0>1:a", NULL},
	{UF, "{'prompt':'Q','completions':[{'response':'R0','overall_score':2},{'response':'R1','overall_score':7.5}]}",
	 "T:Q # C:R0|R1 # L:0>1:b", NULL},
	{UF, "{'instruction':'Q','completions':[{'response':'R0','fine-grained_score':4,'overall_score':1},{'response':'R1','overall_score':3}]}",
	 "T:Q # C:R0|R1 # L:0>1:a", NULL},
	{UF, "{'instruction':'Q','completions':[{'response':'R0'},{'response':'R1','overall_score':3}]}",
	 "!field \"completions[0]\" has no ratings", NULL},
	{UF, "{'instruction':'Q','completions':[{'response':'R0','overall_score':1},{'response':'R0','overall_score':3}]}",
	 "!completions[0] and completions[1] have the same response", NULL},
	{UF, "{'instruction':'Q','completions':[{'response':'R0','overall_score':'x'}]}",
	 "!field \"completions[0].overall_score\" must be a number", NULL},
	{UF, "{'instruction':'Q','completions':[{'text':'R0','overall_score':1}]}",
	 "!field \"completions[0].response\" is missing", NULL},
	{UF, "{'instruction':'Q','completions':{}}", "!field \"completions\" must be a list", NULL},
	{UF, "{'completions':[{'response':'R0','overall_score':1}]}", "!field \"instruction\" is missing", NULL},

	/* ---- ShareGPT / LLaMA-Factory */
	{A, "{'conversations':[{'from':'human','value':'Q'}],'chosen':{'from':'gpt','value':'A'},'rejected':{'from':'gpt','value':'B'}}",
	 "M:user:Q # C:A|B # L:0>1:a", "sharegpt"},
	{SG, "{'system':'S','conversations':[{'from':'human','value':'Q'},{'from':'gpt','value':'x'},{'from':'human','value':'R'}],"
	     "'chosen':{'from':'gpt','value':'A'},'rejected':{'from':'gpt','value':'B'}}",
	 "M:system:S/user:Q/assistant:x/user:R # C:A|B # L:0>1:a", NULL},
	{SG, "{'conversations':[{'from':'observation','value':'Q'}],'chosen':{'from':'gpt','value':'A'},'rejected':{'from':'gpt','value':'B'}}",
	 "!field \"conversations[0].from\" must be \"system\", \"user\" or \"assistant\" (or \"human\", \"gpt\"), got \"observation\"", NULL},
	{SG, "{'conversations':[{'from':'human','value':'Q'}],'chosen':{'from':'human','value':'A'},'rejected':{'from':'gpt','value':'B'}}",
	 "!field \"chosen\" must be an assistant message", NULL},
	{SG, "{'conversations':[{'from':'human','value':'Q'}],'chosen':{'from':'gpt'},'rejected':{'from':'gpt','value':'B'}}",
	 "!field \"chosen.value\" is missing", NULL},
	{SG, "{'conversations':'Q','chosen':{'from':'gpt','value':'A'},'rejected':{'from':'gpt','value':'B'}}",
	 "!field \"conversations\" must be a list of messages", NULL},
	{SG, "{'chosen':'A','rejected':'B'}", "!field \"conversations\" is missing", NULL},
	{A, "{'chosen_messages':[{'role':'system','content':[{'type':'text','value':'S'}],'loss_weight':0.0},"
	    "{'role':'user','content':[{'type':'text','value':'Q'}],'loss_weight':0.0},"
	    "{'role':'assistant','content':[{'type':'text','value':'A'}],'loss_weight':1.0}],"
	    "'rejected_messages':[{'role':'system','content':[{'type':'text','value':'S'}]},"
	    "{'role':'user','content':[{'type':'text','value':'Q'}]},{'role':'assistant','content':[{'type':'text','value':'B'}]}]}",
	 "M:system:S/user:Q # C:A|B # L:0>1:a", "sharegpt (llama-factory v1)"},
	{SG, "{'chosen_messages':[{'role':'user','content':'Q'},{'role':'assistant','content':'A'}]}",
	 "!field \"rejected_messages\" is missing", NULL},

	/* ---- prompts */
	{A, "{'prompt':'Q'}", "T:Q", "prompts"},
	{A, "{'messages':[{'role':'system','content':'S'},{'role':'user','content':'Q'}]}", "M:system:S/user:Q", NULL},
	{PR, "{'prompt':''}", "!field \"prompt\" is empty", NULL},
	{PR, "{'prompt':5}", "!field \"prompt\" must be a string or a list of messages", NULL},
	{PR, "{'text':'Q'}", "!field \"prompt\" (or \"messages\") is missing", NULL},

	/* ---- candidates */
	{A, "{'prompt':'Q','completions':['A',{'text':'B','model':'m1'},{'text':'C','model':null}]}",
	 "T:Q # C:A|B@m1|C", "candidates"},
	{CA, "{'messages':[{'role':'user','content':'Q'}],'completions':['A','A']}", "M:user:Q # C:A|A", NULL},
	{CA, "{'prompt':'Q','completions':[]}", "!field \"completions\" must not be empty", NULL},
	{CA, "{'prompt':'Q','completions':['A',3]}", "!field \"completions[1]\" must be a string or a {\"text\", \"model\"} object", NULL},
	{CA, "{'prompt':'Q','completions':[{'model':'m'}]}", "!field \"completions[0].text\" is missing", NULL},
	/* an empty completion is left out, not the record (#13) */
	{CA, "{'prompt':'Q','completions':['']}", "T:Q", NULL},
	{CA, "{'prompt':'Q','completions':['',{'text':'B','model':'m'},{'text':'','model':'m2'}]}", "T:Q # C:B@m", NULL},
	{CA, "{'prompt':'Q','completions':[{'text':'A','model':1}]}", "!field \"completions[0].model\" must be a string", NULL},
	{CA, "{'prompt':'Q'}", "!field \"completions\" is missing", NULL},

	/* ---- JSON, UTF-8, detection */
	{A, "{'prompt':'Q'", "!invalid JSON near byte", NULL},
	{A, "", "!invalid JSON", NULL},
	{A, "[1,2]", "!expected a JSON object", NULL},
	{A, "{'prompt':'Q'} x", "!invalid JSON: text after the object at byte 16", NULL},
	{A, "{'prompt':'Q'}  \t", "T:Q", NULL},
	{A, "\xEF\xBB\xBF{'prompt':'Q'}", "T:Q", NULL},
	{A, "{'prompt':'Q\xff'}", "!invalid UTF-8 at byte 13", NULL},
	{A, "{'prompt':'\xc0\xaf'}", "!invalid UTF-8 at byte 12", NULL},
	{A, "{'prompt':'\xed\xa0\x80'}", "!invalid UTF-8 at byte 12", NULL},
	{A, "{'prompt':'\xf4\x90\x80\x80'}", "!invalid UTF-8", NULL},
	{A, "{'prompt':'\xe2\x82'}", "!invalid UTF-8", NULL},
	{A, "{'prompt':'caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80'}", "T:caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", NULL},
	{A, "{'prompt':'caf\\u00e9 \\ud83d\\ude00'}", "T:caf\xc3\xa9 \xf0\x9f\x98\x80", NULL},
	{A, "{'prompt':'a\\ud800b'}", "!invalid JSON", NULL},
	{A, "{'prompt':'a\\u0000b'}", "!a string holds a NUL character", NULL},
	{A, "{'prompt':'a\\\\u0000b'}", "T:a\\u0000b", NULL},
	{A, "{'foo':1}", "!cannot tell the format from the fields", NULL},
	{A, "{'chosen':'A','rejected':'B'}", "!field \"prompt\" is missing (records without one need", NULL},
};

static void test_table(void)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const tcase *c = &cases[i];
		char *line = quotes(c->line);
		store_import_parser *p = store_import_parser_new(c->fmt);
		store_record rec;
		int rc = store_import_parse(p, line, strlen(line), &rec);
		if (c->want[0] == '!') {
			const char *msg = store_import_parser_errmsg(p);
			int ok = rc == STORE_EINVAL && strstr(msg, c->want + 1);
			TAP_OK(ok, "case %zu (%s) fails: %s", i, store_import_format_name(c->fmt), c->want + 1);
			if (!ok)
				tap_diag("rc %d, message: %s", rc, msg);
			TAP_IS_INT(store_import_parser_format(p), c->fmt, "case %zu: a failed line fixes no format", i);
		} else {
			char *got = rc == STORE_OK ? dump(&rec) : xasprintf("error: %s", store_import_parser_errmsg(p));
			TAP_IS_STR(got, c->want, "case %zu (%s) parses", i, store_import_format_name(c->fmt));
			free(got);
			if (c->variant)
				TAP_IS_STR(store_import_parser_variant(p), c->variant, "case %zu variant", i);
		}
		store_import_parser_free(p);
		free(line);
	}
}

/* dump(), then what the formats of labels made elsewhere add: " # conf:"
 * each label's confidence (or -), " # R:" ratings (completion:aspect=value
 * on lo..hi), " # F:" feedback (completion+ or completion-) and " # by:"
 * the annotator (name/kind). */
static char *dump_full(const store_record *r)
{
	util_buf b = UTIL_BUF_INIT;
	char *d = dump(r);
	util_buf_adds(&b, d);
	free(d);
	for (size_t i = 0; i < r->nlabels; i++)
		if (r->labels[i].has_confidence)
			util_buf_addf(&b, "%s%g", i ? "," : " # conf:", r->labels[i].confidence);
	for (size_t i = 0; i < r->nratings; i++)
		util_buf_addf(&b, "%s%d:%s=%g/%g..%g", i ? "," : " # R:", r->ratings[i].completion, r->ratings[i].aspect,
			      r->ratings[i].value, r->ratings[i].scale_min, r->ratings[i].scale_max);
	for (size_t i = 0; i < r->nfeedback; i++)
		util_buf_addf(&b, "%s%d%c", i ? "," : " # F:", r->feedback[i].completion, r->feedback[i].good ? '+' : '-');
	if (r->annotator)
		util_buf_addf(&b, " # by:%s/%s", r->annotator, r->annotator_kind ? r->annotator_kind : "-");
	return util_buf_detach(&b);
}

#define MT STORE_IMPORT_MTBENCH
#define MS STORE_IMPORT_MTBENCH_SINGLE
#define AE STORE_IMPORT_ALPACAEVAL
#define KT STORE_IMPORT_KTO

/* Two-turn MT-Bench conversations, differing in the last answer (SAME) or
 * in the first (DIFF). */
#define MT_CONV(a1, a2) "[{'role':'user','content':'Q1'},{'role':'assistant','content':'" a1 "'}," \
			"{'role':'user','content':'Q2'},{'role':'assistant','content':'" a2 "'}]"

/* Judgments, ratings and binary feedback made by other tools. */
static const tcase jcases[] = {
	/* ---- MT-Bench pairwise: turn picks the answer, winner the verdict, judge the annotator */
	{A, "{'model_a':'ma','model_b':'mb','winner':'model_a','judge':'author_0','turn':1,"
	    "'conversation_a':" MT_CONV("A1", "A2") ",'conversation_b':" MT_CONV("B1", "B2") "}",
	 "M:user:Q1 # C:A1@ma|B1@mb # L:0>1:a # by:author_0/human", "mt-bench (pairwise judgments)"},
	{MT, "{'model_a':'ma','model_b':'mb','winner':'tie (bothbad)','judge':['gpt-4','pair-v2'],"
	     "'conversation_a':" MT_CONV("S", "A2") ",'conversation_b':" MT_CONV("S", "B2") "}",
	 "M:user:Q1/assistant:S/user:Q2 # C:A2@ma|B2@mb # L:0>1:both_bad # by:gpt-4/pair-v2/judge", NULL},
	{MT, "{'model_a':'ma','model_b':'mb','winner':'tie','judge':'GPT-4','turn':2,"
	     "'conversation_a':" MT_CONV("S", "A2") ",'conversation_b':" MT_CONV("S", "B2") "}",
	 "M:user:Q1/assistant:S/user:Q2 # C:A2@ma|B2@mb # L:0>1:tie # by:GPT-4/judge", NULL},
	{MT, "{'model_a':'ma','model_b':'mb','winner':'model_b',"
	     "'conversation_a':" MT_CONV("A1", "A2") ",'conversation_b':" MT_CONV("B1", "B2") "}",
	 "!the conversations before the judged answer differ (message 1)", NULL},
	{MT, "{'model_a':'ma','model_b':'mb','winner':'model_b','turn':3,"
	     "'conversation_a':" MT_CONV("A1", "A2") ",'conversation_b':" MT_CONV("B1", "B2") "}",
	 "!field \"conversation_a\" has no assistant message for turn 3", NULL},
	{MT, "{'model_a':'ma','model_b':'mb','winner':'model_b','turn':0,'conversation_a':[],'conversation_b':[]}",
	 "!field \"turn\" must be a whole number from 1", NULL},
	{MT, "{'model_a':'ma','model_b':'mb','winner':'a','conversation_a':[],'conversation_b':[]}",
	 "!field \"winner\" must be", NULL},
	{MT, "{'model_a':'ma','model_b':'mb','winner':'tie','turn':1,"
	     "'conversation_a':" MT_CONV("A1", "A2") ",'conversation_b':" MT_CONV("A1", "B2") "}",
	 "!the two answers are identical", NULL},
	{MT, "{'model_a':'ma','winner':'tie'}", "!field \"model_b\" is missing", NULL},
	{MT, "{'model_a':'ma','model_b':'mb','winner':'tie','judge':3,"
	     "'conversation_a':" MT_CONV("S", "A2") ",'conversation_b':" MT_CONV("S", "B2") "}",
	 "!field \"judge\" must be a string or a list of strings", NULL},

	/* ---- MT-Bench single grading: a rating on 1..10 */
	{A, "{'model':'m','judge':['gpt-4','single-v1'],'score':8.5,'user_prompt':'[Instruction]\\nJudge.\\n\\n"
	    "[Question]\\nWhat?\\n\\n[The Start of Assistant\\u0027s Answer]\\nThat.\\n"
	    "[The End of Assistant\\u0027s Answer]'}",
	 "T:What? # C:That.@m # R:0:score=8.5/1..10 # by:gpt-4/single-v1/judge", "mt-bench-single (ratings)"},
	{MS, "{'model':'m','judge':'gpt-4','score':2,'user_prompt':'[Question]\\nQ\\n\\n[The Start of Reference Answer]\\n"
	     "R\\n[The End of Reference Answer]\\n\\n[The Start of Assistant\\u0027s Answer]\\nA\\n"
	     "[The End of Assistant\\u0027s Answer]'}",
	 "T:Q # C:A@m # R:0:score=2/1..10 # by:gpt-4/judge", NULL},
	{MS, "{'model':'m','judge':'x','score':10,'user_prompt':'<|The Start of Assistant A\\u0027s Conversation with User|>"
	     "\\n\\n### User:\\nQ1\\n\\n### Assistant A:\\nA1\\n\\n### User:\\nQ2\\n\\n### Assistant A:\\nA2"
	     "\\n\\n<|The End of Assistant A\\u0027s Conversation with User|>'}",
	 "M:user:Q1/assistant:A1/user:Q2 # C:A2@m # R:0:score=10/1..10 # by:x/human", NULL},
	{MS, "{'model':'m','judge':'h','question':'Q','answer':'A','score':1}", "T:Q # C:A@m # R:0:score=1/1..10 # by:h/human",
	 NULL},
	{MS, "{'model':'m','judge':'h','question':'Q','answer':'A','score':-1}", "!field \"score\" is -1", NULL},
	{MS, "{'model':'m','judge':'h','question':'Q','answer':'A','score':11}", "!field \"score\" must be between 1 and 10",
	 NULL},
	{MS, "{'model':'m','judge':'h','question':'Q','score':5}", "!field \"answer\" is missing", NULL},
	{MS, "{'model':'m','judge':'h','user_prompt':'no template','score':5}",
	 "!field \"user_prompt\" holds no \"[Question]\"", NULL},

	/* ---- AlpacaEval: weighted preference, rounded; confidence |p - 1.5| * 2 */
	{A, "{'instruction':'I','output_1':'A','output_2':'B','generator_1':'g1','generator_2':'g2',"
	    "'annotator':'alpaca_eval_gpt4','preference':1.25}",
	 "T:I # C:A@g1|B@g2 # L:0>1:a # conf:0.5 # by:alpaca_eval_gpt4/judge", "alpaca-eval (annotations)"},
	{AE, "{'instruction':'I','output_1':'A','output_2':'B','preference':2}", "T:I # C:A|B # L:0>1:b # conf:1", NULL},
	{AE, "{'instruction':'I','output_1':'A','output_2':'B','preference':1.5}", "T:I # C:A|B # L:0>1:tie # conf:0", NULL},
	{AE, "{'instruction':'I','output_1':'A','output_2':'B','preference':0}", "T:I # C:A|B # L:0>1:tie # conf:0", NULL},
	{AE, "{'instruction':'I','input':'X','output_1':'A','output_2':'B','preference':1.75}",
	 "T:I\\n\\nX # C:A|B # L:0>1:b # conf:0.5", NULL},
	{AE, "{'instruction':'I','output_1':'A','output_2':'B','preference':0.5}", "!field \"preference\" must be a number from 1 to 2",
	 NULL},
	{AE, "{'instruction':'I','output_1':'A','output_2':'B','preference':'1'}", "!field \"preference\" must be a number", NULL},
	{AE, "{'instruction':'I','output_1':'A','output_2':'B'}", "!field \"preference\" is missing", NULL},
	{AE, "{'instruction':'I','output_1':'A','output_2':'A','preference':1}", "!output_1 and output_2 are identical", NULL},
	{AE, "{'instruction':'','output_1':'A','output_2':'B','preference':1}", "!field \"instruction\" is empty", NULL},

	/* ---- KTO: TRL's and LLaMA-Factory's layouts */
	{A, "{'prompt':'Q','completion':'A','label':false}", "T:Q # C:A # F:0-", "kto (trl)"},
	{KT, "{'prompt':[{'role':'user','content':'Q'}],'completion':[{'role':'assistant','content':'A'}],'label':true}",
	 "M:user:Q # C:A # F:0+", "kto (trl conversational)"},
	{A, "{'conversations':[{'from':'human','value':'Q'},{'from':'gpt','value':'A'}],'system':'S','kto_tag':false}",
	 "M:system:S/user:Q # C:A # F:0-", "kto (llama-factory)"},
	{A, "{'messages':[{'role':'user','content':'Q'},{'role':'assistant','content':'A'}],'label':true}",
	 "M:user:Q # C:A # F:0+", "kto (llama-factory)"},
	{KT, "{'prompt':'Q','completion':'A','label':1}", "!field \"label\" must be true or false", NULL},
	{KT, "{'prompt':'Q','completion':'A'}", "!field \"label\" (or \"kto_tag\") is missing", NULL},
	{KT, "{'prompt':'Q','completion':'','label':true}", "!the completion is empty", NULL},
	{KT, "{'prompt':'Q','completion':[{'role':'user','content':'A'}],'label':true}",
	 "!field \"completion\" must hold one assistant message", NULL},
	{KT, "{'messages':[{'role':'assistant','content':'A'}],'kto_tag':true}", "!field \"messages\" has no prompt", NULL},
	{KT, "{'messages':[{'role':'user','content':'Q'}],'kto_tag':true}",
	 "!field \"messages\" must end with the assistant's answer", NULL},

	/* ---- UltraFeedback raw: the ratings come along */
	{UF, "{'instruction':'Q','completions':[{'model':'m','response':'A','annotations':{'helpfulness':{'Rating':'4'},"
	     "'honesty':{'Rating':'N/A'},'truthfulness':[{'Rating':'3'},{'Rating':'4'}]},'fine-grained_score':3.5,"
	     "'overall_score':7},{'model':'n','response':'B','overall_score':2}]}",
	 "T:Q # C:A@m|B@n # L:0>1:a # R:0:helpfulness=4/1..5,0:truthfulness=3.5/1..5,0:fine-grained_score=3.5/1..5,"
	 "0:overall_score=7/1..10,1:overall_score=2/1..10", NULL},
	{UF, "{'instruction':'Q','completions':[{'response':'A','annotations':{'helpfulness':{'Rating':'6'}}},"
	     "{'response':'B','overall_score':2}]}",
	 "!field \"completions[0].annotations.helpfulness\": rating 6 is outside 1..5", NULL},

	/* ---- an annotator named by the record */
	{TRL, "{'prompt':'Q','chosen':'A','rejected':'B','annotator':'bob'}", "T:Q # C:A|B # L:0>1:a # by:bob/-", NULL},
	{TRL, "{'prompt':'Q','chosen':'A','rejected':'B','judge':'gpt-4o'}", "T:Q # C:A|B # L:0>1:a # by:gpt-4o/judge", NULL},
	{TRL, "{'prompt':'Q','chosen':'A','rejected':'B','annotator':7}", "T:Q # C:A|B # L:0>1:a", NULL},
};

static void test_judgments(void)
{
	for (size_t i = 0; i < sizeof jcases / sizeof jcases[0]; i++) {
		const tcase *c = &jcases[i];
		char *line = quotes(c->line);
		store_import_parser *p = store_import_parser_new(c->fmt);
		store_record rec;
		int rc = store_import_parse(p, line, strlen(line), &rec);
		if (c->want[0] == '!') {
			const char *msg = store_import_parser_errmsg(p);
			int ok = rc == STORE_EINVAL && strstr(msg, c->want + 1);
			TAP_OK(ok, "judgment case %zu (%s) fails: %s", i, store_import_format_name(c->fmt), c->want + 1);
			if (!ok)
				tap_diag("rc %d, message: %s", rc, msg);
		} else {
			char *got = rc == STORE_OK ? dump_full(&rec) : xasprintf("error: %s", store_import_parser_errmsg(p));
			TAP_IS_STR(got, c->want, "judgment case %zu (%s) parses", i, store_import_format_name(c->fmt));
			free(got);
			if (c->variant)
				TAP_IS_STR(store_import_parser_variant(p), c->variant, "judgment case %zu variant", i);
		}
		store_import_parser_free(p);
		free(line);
	}
}

/* Under auto, the first record fixes the format for the rest. */
static void test_auto_sticks(void)
{
	store_import_parser *p = store_import_parser_new(STORE_IMPORT_AUTO);
	store_record rec;
	char *l1 = quotes("{'prompt':'Q','chosen':'A','rejected':'B'}");
	char *l2 = quotes("{'chosen':'\\n\\nHuman: Hi\\n\\nAssistant: Yo','rejected':'\\n\\nHuman: Hi\\n\\nAssistant: No'}");
	char *l3 = quotes("{'prompt':'Q2','chosen':'A','rejected':'B','score_chosen':1,'score_rejected':2}");
	TAP_IS_INT(store_import_parser_format(p), STORE_IMPORT_AUTO, "auto before the first record");
	TAP_IS_INT(store_import_parse(p, l1, strlen(l1), &rec), STORE_OK, "first record parses");
	TAP_IS_INT(store_import_parser_format(p), STORE_IMPORT_TRL, "detected trl");
	TAP_IS_INT(store_import_parse(p, l2, strlen(l2), &rec), STORE_EINVAL, "an hh record in a trl file fails");
	TAP_OK(strstr(store_import_parser_errmsg(p),
		      "field \"prompt\" is missing (records without one need \"chosen\" and \"rejected\" as whole conversations, or --format hh for HH-RLHF transcripts) (this record looks like hh, but the file's first record was trl)") != NULL,
	       "the message says the file's format: %s", store_import_parser_errmsg(p));
	/* extra fields of another format do not matter once the format is fixed */
	TAP_IS_INT(store_import_parse(p, l3, strlen(l3), &rec), STORE_OK, "a trl record with extra score fields");
	TAP_IS_INT(rec.nlabels, 1, "one label");
	TAP_IS_STR(rec.labels[0].verdict, "a", "trl ignores the scores");
	store_import_parser_free(p);
	free(l1);
	free(l2);
	free(l3);
}

static void test_detect(void)
{
	static const struct {
		const char *line;
		store_import_format want;
	} d[] = {
		{"{'prompt':'Q','chosen':'A','rejected':'B'}", STORE_IMPORT_TRL},
		{"{'chosen':[],'rejected':[]}", STORE_IMPORT_TRL},
		{"{'chosen':'\\n\\nHuman: x\\n\\nAssistant: y','rejected':'z'}", STORE_IMPORT_HH},
		{"{'chosen':'x','rejected':'y','score_chosen':1}", STORE_IMPORT_ULTRAFEEDBACK},
		{"{'instruction':'x','completions':[]}", STORE_IMPORT_ULTRAFEEDBACK},
		{"{'prompt':'x','completions':[{'response':'r','overall_score':1}]}", STORE_IMPORT_ULTRAFEEDBACK},
		{"{'prompt':'x','completions':['a']}", STORE_IMPORT_CANDIDATES},
		{"{'conversations':[]}", STORE_IMPORT_SHAREGPT},
		{"{'chosen_messages':[]}", STORE_IMPORT_SHAREGPT},
		{"{'messages':[]}", STORE_IMPORT_PROMPTS},
		{"{'prompt':'x'}", STORE_IMPORT_PROMPTS},
		{"{'model_a':'a','model_b':'b','winner':'tie'}", STORE_IMPORT_MTBENCH},
		{"{'model_a':'a','model_b':'b','conversation_a':[]}", STORE_IMPORT_MTBENCH},
		{"{'model':'m','score':1,'judge':'j'}", STORE_IMPORT_MTBENCH_SINGLE},
		{"{'model':'m','score':1,'user_prompt':'p'}", STORE_IMPORT_MTBENCH_SINGLE},
		{"{'instruction':'i','output_1':'a','output_2':'b'}", STORE_IMPORT_ALPACAEVAL},
		{"{'prompt':'x','completion':'c','label':true}", STORE_IMPORT_KTO},
		{"{'messages':[],'label':false}", STORE_IMPORT_KTO},
		{"{'conversations':[],'kto_tag':true}", STORE_IMPORT_KTO},
		{"{'prompt':'x','completion':'c','label':'good'}", STORE_IMPORT_PROMPTS},
		{"{'x':1}", STORE_IMPORT_AUTO},
		{"nope", STORE_IMPORT_AUTO},
	};
	for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
		char *line = quotes(d[i].line);
		store_import_format f;
		int rc = store_import_detect(line, strlen(line), &f);
		TAP_IS_INT(f, d[i].want, "detect %s", d[i].line);
		TAP_IS_INT(rc, d[i].want == STORE_IMPORT_AUTO ? STORE_EINVAL : STORE_OK, "detect rc %zu", i);
		free(line);
	}
}

static void test_names(void)
{
	const char *names[] = {"auto", "trl", "hh", "ultrafeedback", "sharegpt", "prompts", "candidates",
			       "mt-bench", "mt-bench-single", "alpaca-eval", "kto"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		store_import_format f = STORE_IMPORT_AUTO;
		TAP_IS_INT(store_import_format_from_name(names[i], &f), STORE_OK, "format %s known", names[i]);
		TAP_IS_STR(store_import_format_name(f), names[i], "format %s round-trips", names[i]);
	}
	store_import_format f;
	TAP_IS_INT(store_import_format_from_name("TRL", &f), STORE_EINVAL, "format names are exact");
	TAP_IS_INT(store_import_format_from_name(NULL, &f), STORE_EINVAL, "NULL format name");

	static const char *const src[][2] = {
		{"data/hh/test-first200.jsonl.gz", "test-first200"},
		{"eval_clean.jsonl", "eval_clean"},
		{"a.b.json", "a.b"},
		{"dir.x/plain", "plain"},
		{"-", "stdin"},
		{".jsonl", ".jsonl"},
	};
	for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
		char *s = store_import_default_source(src[i][0]);
		TAP_IS_STR(s, src[i][1], "default source of %s", src[i][0]);
		free(s);
	}
}

static void test_utf8(void)
{
	static const struct {
		const char *s;
		size_t n;
		int ok;
		size_t at;
	} u[] = {
		{"", 0, 1, 0},
		{"plain ascii text, long enough for the fast path", 48, 1, 0},
		{"\xc3\xa9", 2, 1, 0},
		{"\xc3", 1, 0, 0},
		{"abcdefgh\xc3(", 10, 0, 8},
		{"\xe0\x80\x80", 3, 0, 0},   /* overlong */
		{"\xed\xbf\xbf", 3, 0, 0},   /* surrogate */
		{"\xef\xbf\xbf", 3, 1, 0},
		{"\xf0\x90\x80\x80", 4, 1, 0},
		{"\xf4\x8f\xbf\xbf", 4, 1, 0},
		{"\xf5\x80\x80\x80", 4, 0, 0},
		{"\x80", 1, 0, 0},
		{"a\0b", 3, 1, 0},
	};
	for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
		size_t at = 99;
		int ok = util_utf8_valid(u[i].s, u[i].n, &at);
		TAP_IS_INT(ok, u[i].ok, "utf8 case %zu", i);
		if (!u[i].ok)
			TAP_IS_INT(at, u[i].at, "utf8 case %zu: offset", i);
	}
}

/* A record with a 10 MB string parses; so does the next, smaller one. */
static void test_big_line(void)
{
	size_t n = 10u << 20;
	util_buf b = UTIL_BUF_INIT;
	util_buf_adds(&b, "{\"prompt\": \"Q\", \"chosen\": \"");
	util_buf_grow(&b, n);
	memset(b.data + b.len, 'x', n);
	b.len += n;
	b.data[b.len] = '\0';
	util_buf_adds(&b, "\", \"rejected\": \"B\"}");
	store_import_parser *p = store_import_parser_new(STORE_IMPORT_AUTO);
	store_record rec;
	TAP_IS_INT(store_import_parse(p, b.data, b.len, &rec), STORE_OK, "a 10 MB line parses");
	TAP_IS_INT(strlen(rec.completions[0].text), n, "the 10 MB completion is whole");
	const char *small = "{\"prompt\": \"Q\", \"chosen\": \"A\", \"rejected\": \"B\"}";
	TAP_IS_INT(store_import_parse(p, small, strlen(small), &rec), STORE_OK, "the next line parses");
	TAP_IS_STR(rec.completions[0].text, "A", "and holds its own data");
	const char nulline[] = "{\"prompt\": \"a\0b\"}";
	TAP_IS_INT(store_import_parse(p, nulline, sizeof nulline - 1, &rec), STORE_EINVAL, "a raw NUL byte fails");
	TAP_IS_STR(store_import_parser_errmsg(p), "a NUL byte at byte 14", "and says where");
	/* not NUL-terminated input: the parser must stop at len */
	TAP_IS_INT(store_import_parse(p, small, strlen(small) - 1, &rec), STORE_EINVAL, "a cut line fails");
	store_import_parser_free(p);
	util_buf_free(&b);
}

int main(void)
{
	test_table();
	test_judgments();
	test_auto_sticks();
	test_detect();
	test_names();
	test_utf8();
	test_big_line();
	return tap_done();
}
