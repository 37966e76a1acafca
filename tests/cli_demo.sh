#!/bin/sh
# share/demo.sh at DEMO_SCALE=small, with the programs found first in PATH:
# every step's output exists, the store holds what each step wrote, and a
# rerun reuses it all.
. "$top_srcdir/tests/tap.sh"
[ -x "$top_builddir/share/task/task-verify" ] || skip_all "share/task/task-verify is not built"
command -v python3 >/dev/null 2>&1 || [ -x /usr/bin/python3 ] || skip_all "python3 is needed"
D=$T/demo
# the programs this run tests (the installed ones under `make installcheck`)
bin=$(dirname "$(command -v dpo-db)")
DEMO_SCALE=small DPO_DEMO_DIR=$D DPO_THREADS=2 DPO_BIN=$bin sh "$top_srcdir/share/demo.sh" "$top_builddir" \
	>"$T/out1" 2>"$T/err1"
rc=$?
is "demo: exit 0" "$rc" 0
[ "$rc" = 0 ] || sed 's/^/#   /' "$T/err1" | tail -n 30
ok "reference model" test -f "$D/ref/model.safetensors" -a -f "$D/ref/tokenizer.json"
ok "DPO policy" test -f "$D/policy/model.safetensors"
ok "evaluation results" test -s "$D/eval.json"
q() { sqlite3 "$D/demo.db" "$1"; }
is "24 train and 8 test prompts" "$(q "select split, count(*) from prompts group by 1 order by 1" | tr '\n' ' ')" "test|8 train|24 "
n=$(q "select count(*) from completions c join prompts p on p.id = c.prompt_id join generators g on g.id = c.generator_id where p.split = 'train' and g.name = 'reference'")
ok "1 to 4 reference completions per train prompt ($n)" test "$n" -ge 24 -a "$n" -le 96
is "no train prompt has more than 4" "$(q "select count(*) from (select p.id from prompts p join completions c on c.prompt_id = p.id where p.split = 'train' group by p.id having count(*) > 4)")" 0
j=$(q "select count(*) from comparisons c join annotators a on a.id = c.annotator_id join prompts p on p.id = c.prompt_id where a.kind = 'judge' and p.split = 'train'")
pairs=$(q "select coalesce(sum(n_completions * (n_completions - 1) / 2), 0) from prompts where split = 'train'")
is "every train pair judged once by the verifier" "$j" "$pairs"
is "the verifier is consistent" "$(q "select count(*) from comparisons where inconsistent")" 0
ok "a train run with loss metrics" test "$(q "select count(*) from runs r join metrics m on m.run_id = r.id where r.kind = 'train' and m.name = 'loss'")" -ge 1
ok "an eval run" test "$(q "select count(*) from runs where kind = 'eval' and status = 'ok'")" -ge 1
like "summary: accuracy line" "$(cat "$T/out1")" "accuracy, DPO policy:"
like "summary: win rate line" "$(cat "$T/out1")" "win rate vs reference:"
jok=$(sed -n 's/.*"prompts":\([0-9]*\).*"wins":\([0-9]*\),"losses":\([0-9]*\),"ties":\([0-9]*\).*/\1 \2 \3 \4/p' "$D/eval.json")
ok "eval: every test prompt judged ($jok)" sh -c 'set -- $1; [ "$1" = 8 ] && [ $(($2 + $3 + $4)) = 8 ]' x "$jok"
ok "frontier: a policy per beta" test -f "$D/sweep/beta-0.5/model.safetensors" -a -f "$D/sweep/beta-2/model.safetensors"
ok "frontier: an evaluation per beta" test -s "$D/sweep/beta-0.5.eval.json" -a -s "$D/sweep/beta-2.eval.json"
like "frontier: the policy's beta recorded" "$(cat "$D/sweep/beta-2.eval.json")" '"policy_beta":2,'
like "frontier: best-of-N from the reference" "$(cat "$D/sweep/beta-2.eval.json")" '"best_of_n":[{"n":1,'
is "frontier: beta and best-of-N metrics in the store" \
	"$(q "select count(distinct m.run_id) from metrics m join runs r on r.id = m.run_id where r.kind = 'eval' and m.name = 'eval/beta'") $(q "select count(*) > 0 from metrics where name = 'eval/bon_accuracy'")" "3 1"
like "summary: frontier lines" "$(cat "$T/out1")" "DPO beta=2"
if dpo-db report --help >/dev/null 2>&1; then
	ok "report written" test -s "$D/report.html"
	like "report: the frontier chart" "$(cat "$D/report.html")" "Accuracy against KL to the reference"
	like "report: a DPO point per beta" "$(cat "$D/report.html")" "&#946;=0.5"
fi

# a rerun reuses everything
counts() { q "select (select count(*) from prompts), (select count(*) from completions), (select count(*) from comparisons), (select count(*) from runs where kind = 'train')"; }
before=$(counts)
DEMO_SCALE=small DPO_DEMO_DIR=$D DPO_THREADS=2 DPO_BIN=$bin sh "$top_srcdir/share/demo.sh" "$top_builddir" \
	>"$T/out2" 2>"$T/err2"
is "rerun: exit 0" "$?" 0
like "rerun: reuses the reference" "$(cat "$T/err2")" "reusing $D/ref"
like "rerun: reuses the policy" "$(cat "$T/err2")" "reusing $D/policy"
is "rerun: nothing new in the store" "$(counts)" "$before"
is "rerun: same results" "$(sed -n '/accuracy/p' "$T/out2")" "$(sed -n '/accuracy/p' "$T/out1")"
done_testing
