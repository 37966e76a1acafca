#!/bin/sh
# cli_judge_opts.sh: dpo-judge's command line on the one option table
# (util/opt.h): --help, the range and choice errors' wording, an unknown
# option, the checks that combine options, and defaults from the config
# file's [dpo-judge] section used, then overridden by the command line.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_judge_common.sh"

dpo-judge --help >"$T/help.out" 2>"$T/help.msg"
is "--help exits 0" $? 0
like "--help lists --provider" "$(cat "$T/help.out")" "--provider NAME"
like "--help shows the table's defaults" "$(cat "$T/help.out")" "requests in flight (default 16)"
like "--help keeps the exit-status line with 130" "$(cat "$T/help.out")" "130 interrupted"
like "--help names the config section" "$(cat "$T/help.out")" "[dpo-judge]"
is "--help writes nothing to stderr" "$(cat "$T/help.msg")" ""

dpo-judge --concurrency 0 >"$T/range.out" 2>"$T/range.msg"
is "--concurrency 0 exits 2" $? 2
is "range error in the one wording" "$(head -n 1 "$T/range.msg")" \
	'dpo-judge: --concurrency: expected an integer in [1, 4096], got "0"'
like "range error says where to look" "$(cat "$T/range.msg")" "Try 'dpo-judge --help'"
is "a usage error prints nothing on stdout" "$(cat "$T/range.out")" ""
dpo-judge --temperature=2.5 --model m >/dev/null 2>"$T/temp.msg"
is "--temperature 2.5 exits 2" $? 2
is "--temperature range error" "$(head -n 1 "$T/temp.msg")" \
	'dpo-judge: --temperature: expected a number in [0, 2], got "2.5"'
dpo-judge --provider gemini --model m >/dev/null 2>"$T/prov.msg"
is "--provider outside its choices exits 2" $? 2
is "--provider names the choices" "$(head -n 1 "$T/prov.msg")" \
	'dpo-judge: --provider: expected one of openai, anthropic, azure, exec, got "gemini"'
dpo-judge --model m --pairs random:0 >/dev/null 2>"$T/pairs.msg"
is "--pairs random:0 exits 2" $? 2
is "--pairs says what it takes" "$(head -n 1 "$T/pairs.msg")" \
	'dpo-judge: --pairs: expected all or random:N with N >= 1, got "random:0"'

dpo-judge --bogus >/dev/null 2>"$T/unknown.msg"
is "an unknown option exits 2" $? 2
is "an unknown option is named" "$(head -n 1 "$T/unknown.msg")" "dpo-judge: unknown option --bogus"
dpo-judge --model m stray >/dev/null 2>&1
is "a positional argument exits 2" $? 2

dpo-judge --provider exec >/dev/null 2>"$T/exec.msg"
is "exec without --command exits 2" $? 2
is "exec without --command says so" "$(head -n 1 "$T/exec.msg")" "dpo-judge: --provider exec needs --command CMD"
dpo-judge --provider exec --command true --template pairwise >/dev/null 2>"$T/exect.msg"
is "--template with exec exits 2" $? 2
is "--template with exec says so" "$(head -n 1 "$T/exect.msg")" \
	"dpo-judge: --json-verdict and --template do not apply to --provider exec"
dpo-judge --model m --command true >/dev/null 2>"$T/cmd.msg"
is "--command without exec exits 2" $? 2
is "--command without exec says so" "$(head -n 1 "$T/cmd.msg")" "dpo-judge: --command is only for --provider exec"

# ---- the config file ------------------------------------------------------------------
DB=$T/opts.db
ok "seed 4 prompts x 3 completions" "$DBTOOL" seed "$DB" 4 3
printf '# judge with the mini model, a few pairs at a time\n[dpo-judge]\nmodel = gpt-4o-mini\nlimit = 2\nconcurrency = 2\n' >"$T/config"
DPO_CONFIG=$T/config dpo-judge --db "$DB" --base-url http://127.0.0.1:9/v1 --dry-run --json >"$T/cfg.json" 2>"$T/cfg.err"
is "config: dry run exits 0 (the model comes from the config file)" $? 0
is "config: limit = 2 is used" "$(jget "$T/cfg.json" pairs)" 2
DPO_CONFIG=$T/config dpo-judge --db "$DB" --base-url http://127.0.0.1:9/v1 --dry-run --json --limit 5 >"$T/over.json" 2>/dev/null
is "config: --limit 5 overrides it" "$(jget "$T/over.json" pairs)" 5
DPO_CONFIG=$T/config dpo-judge --help >"$T/cfghelp.out" 2>&1
like "--help shows the config file's default" "$(cat "$T/cfghelp.out")" "(default 2, from $T/config)"
dpo-judge --db "$DB" --base-url http://127.0.0.1:9/v1 --dry-run --json --model m >"$T/nocfg.json" 2>/dev/null
is "without the config file every pending pair" "$(jget "$T/nocfg.json" pairs)" 12

printf '[dpo-judge]\nconcurrency = 0\n' >"$T/bad.config"
DPO_CONFIG=$T/bad.config dpo-judge --model m >/dev/null 2>"$T/badcfg.msg"
is "a bad value in the config file exits 2" $? 2
is "a bad config value names file, line and key" "$(head -n 1 "$T/badcfg.msg")" \
	"dpo-judge: $T/bad.config:2: concurrency: expected an integer in [1, 4096], got \"0\""
printf '[dpo-judge]\ndry-run = true\n' >"$T/dry.config"
DPO_CONFIG=$T/dry.config dpo-judge --model m >/dev/null 2>"$T/drycfg.msg"
is "--dry-run cannot come from the config file" $? 2
like "and the message says so" "$(cat "$T/drycfg.msg")" "has no option 'dry-run' that a config file may set"
is "nothing was judged" "$("$DBTOOL" count "$DB")" 0

done_testing
