#!/bin/sh
# share/demo.sh at DEMO_SCALE=small: every step's output exists, the store
# holds what each step wrote, and a rerun reuses it all.
. "$top_srcdir/tests/tap.sh"
[ -x "$top_builddir/share/task/task-verify" ] || skip_all "share/task/task-verify is not built"
command -v python3 >/dev/null 2>&1 || [ -x /usr/bin/python3 ] || skip_all "python3 is needed"
D=$T/demo
DEMO_SCALE=small DPO_DEMO_DIR=$D DPO_THREADS=2 sh "$top_srcdir/share/demo.sh" "$top_builddir" \
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
if dpo-db report --help >/dev/null 2>&1; then
	ok "report written" test -s "$D/report.html"
fi

# a rerun reuses everything
counts() { q "select (select count(*) from prompts), (select count(*) from completions), (select count(*) from comparisons), (select count(*) from runs where kind = 'train')"; }
before=$(counts)
DEMO_SCALE=small DPO_DEMO_DIR=$D DPO_THREADS=2 sh "$top_srcdir/share/demo.sh" "$top_builddir" \
	>"$T/out2" 2>"$T/err2"
is "rerun: exit 0" "$?" 0
like "rerun: reuses the reference" "$(cat "$T/err2")" "reusing $D/ref"
like "rerun: reuses the policy" "$(cat "$T/err2")" "reusing $D/policy"
is "rerun: nothing new in the store" "$(counts)" "$before"
is "rerun: same results" "$(sed -n '/accuracy/p' "$T/out2")" "$(sed -n '/accuracy/p' "$T/out1")"
done_testing
