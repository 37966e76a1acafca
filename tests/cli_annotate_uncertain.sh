#!/bin/sh
# cli_annotate_uncertain.sh: dpo-annotate --order uncertain with --policy and
# --reference: each pair's DPO implicit-reward margin checked against
# `dpo-model score` on the same token ids (prompt and completion tokenized
# by `dpo-model tokenize`, EOS appended as dpo-train does), the store's
# cache used on the second start, and the order: pairs a judge labelled
# inconsistently first, then the smallest |margin|.
. "$top_srcdir/tests/tap.sh"
for p in dpo-annotate dpo-db dpo-model sqlite3 python3; do
	command -v $p >/dev/null 2>&1 || skip_all "$p is not available"
done
TASK=$top_srcdir/share/task
dpo-model init --config "$TASK/config.json" --tokenizer "$TASK" --out "$T/pol" --seed 1 >/dev/null 2>&1
dpo-model init --config "$TASK/config.json" --tokenizer "$TASK" --out "$T/ref" --seed 2 >/dev/null 2>&1
ok "two tiny models" test -f "$T/pol/model.safetensors" -a -f "$T/ref/model.safetensors"
printf '%s\n' '{"prompt": "123>", "completions": ["321", "3", "3210"]}' \
	'{"prompt": "45>", "completions": ["54", "4"]}' \
	'{"prompt": "9876>", "completions": ["6789", "678", "9"]}' >"$T/c.jsonl"
DB=$T/u.db
dpo-db --db "$DB" import "$T/c.jsonl" >/dev/null 2>&1
q() { sqlite3 "$DB" "$1"; }
is "7 pairs" "$(q "SELECT count(*) FROM completions")" 8

run() {
	dpo-annotate --db "$DB" --annotator ann --order uncertain --policy "$T/pol" --reference "$T/ref" --beta 0.5 \
		--margins-only "$@"
}
run >"$T/m1.tsv" 2>"$T/m1.err"
is "margins: exit 0" "$?" 0
like "margins: all computed the first time" "$(cat "$T/m1.err")" "margins of 7 pairs: 7 computed, 0 from the cache"
is "margins: one line per pair" "$(wc -l <"$T/m1.tsv" | tr -d ' ')" 7
is "margins: cached in the store" "$(q "SELECT count(*) FROM margin_cache")" 7
run >"$T/m2.tsv" 2>"$T/m2.err"
like "second start: nothing computed" "$(cat "$T/m2.err")" "margins of 7 pairs: 0 computed, 7 from the cache"
ok "second start: the same margins" cmp "$T/m1.tsv" "$T/m2.tsv"

# the reference: summed log-probs from dpo-model score on the ids of
# dpo-model tokenize (EOS appended to the completion), beta 0.5
EOS=$(dpo-model info "$T/pol" | sed -n 's/^eos token ids: *\([0-9]*\).*/\1/p')
is "bad margins: none" "$(python3 - "$DB" "$T" "$EOS" <"$T/m1.tsv" <<'PY'
import json, sqlite3, subprocess, sys
db, tmp, eos = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = sqlite3.connect(db)
def text(sql, i):
    return con.execute(sql, (i,)).fetchone()[0]
def ids(s):
    return [int(t) for t in subprocess.check_output(["dpo-model", "tokenize", tmp + "/pol", s]).split()]
def logp(model, p, c):
    f = tmp + "/ids.json"
    json.dump({"prompt_ids": p, "completion_ids": c}, open(f, "w"))
    out = subprocess.check_output(["dpo-model", "score", tmp + "/" + model, "--ids-json", f, "--threads", "1"])
    return json.loads(out)["logp_sum"]
bad = []
prev = -1
for line in sys.stdin:
    pid, a, b, m = line.split("\t")
    p = ids(text("SELECT content FROM prompts WHERE id = ?", int(pid)))
    ca = ids(text("SELECT text FROM completions WHERE id = ?", int(a))) + [eos]
    cb = ids(text("SELECT text FROM completions WHERE id = ?", int(b))) + [eos]
    want = 0.5 * ((logp("pol", p, ca) - logp("ref", p, ca)) - (logp("pol", p, cb) - logp("ref", p, cb)))
    if abs(float(m) - want) > 1e-4 + 1e-4 * abs(want):
        bad.append("%s/%s: %s, want %.9g" % (a, b, m.strip(), want))
    if abs(float(m)) < prev:
        bad.append("%s/%s: out of |margin| order" % (a, b))
    prev = abs(float(m))
print(" ".join(bad) or "none")
PY
)" none

# a judge inconsistent across the two orders on the pair with the largest
# |margin|: it comes first now (the margins from the cache)
last=$(tail -n 1 "$T/m1.tsv")
set -- $last
q "INSERT INTO annotators(kind, name, provider, model, template_hash, params, created_at)
   VALUES ('judge', 'j', 'p', 'm', 't', '{}', '2026-01-01T00:00:00Z');
   INSERT INTO comparisons(prompt_id, completion_a, completion_b, annotator_id, verdict, inconsistent, created_at)
   VALUES ($1, $2, $3, (SELECT id FROM annotators WHERE name = 'j'), 'tie', 1, '2026-01-01T00:00:00Z')"
run >"$T/m3.tsv" 2>"$T/m3.err"
like "with a judge: margins from the cache" "$(cat "$T/m3.err")" "0 computed, 7 from the cache"
is "the inconsistently judged pair comes first" "$(head -n 1 "$T/m3.tsv")" "$last"
is "then the others by |margin|" "$(tail -n 6 "$T/m3.tsv")" "$(head -n 6 "$T/m1.tsv")"

# another beta scales the margins (same cache rows)
run --beta 1 >"$T/m4.tsv" 2>/dev/null
is "beta 1: twice the margins of beta 0.5" "$(python3 -c '
import sys
a = [float(l.split()[3]) for l in open(sys.argv[1])]
b = [float(l.split()[3]) for l in open(sys.argv[2])]
print(all(abs(y - 2 * x) <= 1e-7 * max(1, abs(y)) for x, y in zip(a, b)) and len(a) == 7)' "$T/m3.tsv" "$T/m4.tsv")" True

# on screen: the margins are read before the screen opens, and the first
# item labelled is the inconsistently judged pair
if command -v tmux >/dev/null 2>&1; then
	. "$top_srcdir/tests/cli_annotate_lib.sh"
	start tui 100 30 --db "$DB" --annotator tui --order uncertain --policy "$T/pol" --reference "$T/ref"
	ok "on screen: the first item" wait_for tui "item 1/7"
	keys tui 1
	ok "on screen: labelled" wait_for tui "item 2/7"
	keys tui q
	is "on screen: exit 0" "$(wait_exit tui)" 0
	is "on screen: the first label is on the inconsistently judged pair" \
		"$(q "SELECT c.completion_a || ' ' || c.completion_b FROM comparisons c JOIN annotators a
		      ON a.id = c.annotator_id WHERE a.name = 'tui'")" "$2 $3"
	like "on screen: the margins came from the cache before the screen opened" "$(cat "$T/tui.err")" \
		"margins of 7 pairs: 0 computed, 7 from the cache"
else
	echo "ok # skip tmux is not installed"
fi

# usage errors
dpo-annotate --db "$DB" --annotator ann --order uncertain --policy "$T/pol" --margins-only >/dev/null 2>&1
is "--policy without --reference: exit 2" "$?" 2
dpo-annotate --db "$DB" --annotator ann --policy "$T/pol" --reference "$T/ref" --margins-only >/dev/null 2>&1
is "--policy without --order uncertain: exit 2" "$?" 2
dpo-annotate --db "$DB" --annotator ann --order uncertain --policy "$T/nope" --reference "$T/ref" --margins-only \
	>/dev/null 2>"$T/nope.err"
is "a missing policy: exit 1" "$?" 1
like "a missing policy: named" "$(cat "$T/nope.err")" "nope"
done_testing
