#!/bin/sh
# cli_db_labels.sh: labels made elsewhere (issue #13): MT-Bench pairwise
# judgments and single grading, AlpacaEval annotations, UltraFeedback
# ratings, KTO binary feedback; --annotator; derive-pairs; export --format
# kto. What went in is checked against a reference python3 computes from the
# files in tests/data/labels (texts compared exactly).
. "$top_srcdir/tests/tap.sh"

D=$top_srcdir/tests/data/labels
DB=$T/l.db
summary() { sed 's/^[^:]*: //' "$T/.out"; }

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import sqlite3' 2>/dev/null; then
	skip_all "python3 with sqlite3 is needed for the reference"
fi

# The reference: python3 check.py MODE DB FILES... prints "ok" or what differs.
cat >"$T/check.py" <<'EOF'
import hashlib, json, sqlite3, sys

mode, db = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
con = sqlite3.connect(db)
bad = []

def records(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]

# one canonical prompt form (#12): a conversation of one user message is
# the prompt of its text, stored in whichever form came first
def prompt_key(kind, content):
    return ("text", content) if kind == "text" else msgs_key(json.loads(content))

def msgs_key(msgs, canon=True):
    if canon and len(msgs) == 1 and msgs[0]["role"] == "user":
        return ("text", msgs[0]["content"])
    return ("chat", tuple((m["role"], m["content"]) for m in msgs))

def canon_content(content):
    k = msgs_key(json.loads(content)) if content.startswith("[{") else ("text", content)
    return k[1] if k[0] == "text" else content

def stored_comparisons(annotators=None):
    rows = con.execute(
        "SELECT p.kind, p.content, ca.text, cb.text, c.verdict, c.confidence, a.name, a.kind "
        "FROM comparisons c JOIN prompts p ON p.id = c.prompt_id JOIN completions ca ON ca.id = c.completion_a "
        "JOIN completions cb ON cb.id = c.completion_b JOIN annotators a ON a.id = c.annotator_id").fetchall()
    out = []
    for pk, pc, ta, tb, v, conf, name, kind in rows:
        if annotators is not None and name not in annotators:
            continue
        out.append(norm(prompt_key(pk, pc), ta, tb, v, conf, name, kind))
    return sorted(out, key=repr)

def norm(prompt, ta, tb, v, conf, name, kind):
    # a label whatever the storage order: (winner, loser) or the sorted pair
    if v == "b":
        ta, tb, v = tb, ta, "a"
    elif v in ("tie", "both_bad"):
        ta, tb = sorted((ta, tb))
    return (prompt, ta, tb, v, None if conf is None else round(conf, 12), name, kind)

def generators():
    return {t: g for t, g in con.execute(
        "SELECT c.text, g.name FROM completions c JOIN generators g ON g.id = c.generator_id")}

def expect_gen(text, model):
    got = generators().get(text)
    if got != model:
        bad.append("generator of %r: %r, want %r" % (text[:30], got, model))

def compare(what, got, want):
    if got != want:
        bad.append("%s:\n  got  %r\n  want %r" % (what, got, want))

def mtbench_expect(recs):
    verdicts = {"model_a": "a", "model_b": "b", "tie": "tie", "tie (bothbad)": "both_bad"}
    out = []
    for r in recs:
        turn = r.get("turn")
        sides = []
        for s in ("a", "b"):
            conv = r["conversation_" + s]
            idx = [i for i, m in enumerate(conv) if m["role"] == "assistant"]
            at = idx[turn - 1] if turn else idx[-1]
            sides.append((conv[:at], conv[at]["content"]))
            expect_gen(conv[at]["content"], r["model_" + s])
        j = r["judge"]
        name = "/".join(j) if isinstance(j, list) else j
        kind = "judge" if isinstance(j, list) or name.lower().startswith(("gpt", "claude")) else "human"
        out.append(norm(msgs_key(sides[0][0]), sides[0][1], sides[1][1], verdicts[r["winner"]], None, name, kind))
    return out

def alpaca_expect(recs):
    out = []
    for r in recs:
        p = r["preference"] or 1.5
        v = "a" if p < 1.5 else "b" if p > 1.5 else "tie"
        prompt = r["instruction"] + ("\n\n" + r["input"] if r.get("input") else "")
        out.append(norm(("text", prompt), r["output_1"], r["output_2"], v, abs(p - 1.5) * 2, r["annotator"], "judge"))
        expect_gen(r["output_1"], r["generator_1"])
        expect_gen(r["output_2"], r["generator_2"])
    return out

def number(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None

def uf_values(c):
    # aspect -> (value, scale max) of one raw UltraFeedback completion
    vals = {}
    for key in ("annotations", "ratings"):
        for aspect, v in (c.get(key) or {}).items():
            ones = v if isinstance(v, list) else [v]
            xs = [number(o.get("Rating", o.get("rating")) if isinstance(o, dict) else o) for o in ones]
            xs = [x for x in xs if x is not None]
            if xs:
                vals[aspect] = (sum(xs) / len(xs), 5.0)
    for name, hi in (("fine-grained_score", 5.0), ("overall_score", 10.0)):
        if number(c.get(name)) is not None:
            vals[name] = (number(c[name]), hi)
    return vals

def stored_ratings():
    return sorted((canon_content(r[0]),) + tuple(r[1:]) for r in con.execute(
        "SELECT p.content, c.text, r.aspect, r.value, r.scale_min, r.scale_max, a.name FROM ratings r "
        "JOIN completions c ON c.id = r.completion_id JOIN prompts p ON p.id = c.prompt_id "
        "JOIN annotators a ON a.id = r.annotator_id").fetchall())

def kto_expect(recs, canon=True):
    out = []
    for r in recs:
        label = r.get("kto_tag", r.get("label"))
        if "completion" in r:
            p = r["prompt"]
            prompt = ("text", p) if isinstance(p, str) else msgs_key(p, canon)
            c = r["completion"]
            text = c if isinstance(c, str) else c[0]["content"]
        else:
            conv = r.get("messages") or [{"role": {"human": "user", "gpt": "assistant"}[m["from"]],
                                         "content": m["value"]} for m in r["conversations"]]
            if r.get("system"):
                conv = [{"role": "system", "content": r["system"]}] + conv
            prompt, text = msgs_key(conv[:-1], canon), conv[-1]["content"]
        out.append((prompt, text, 1 if label else 0))
    return out

def stored_feedback():
    return [(prompt_key(k, c), t, g) for k, c, t, g in con.execute(
        "SELECT p.kind, p.content, c.text, f.good FROM feedback f JOIN prompts p ON p.id = f.prompt_id "
        "JOIN completions c ON c.id = f.completion_id ORDER BY p.id, c.id")]

def sha(b):
    return hashlib.sha256(b).hexdigest()

def derive_expect(recs, aspect, margin, all_pairs, seed):
    out = []
    for r in recs:
        rated = sorted(((sha(c["response"].encode()), c["response"], uf_values(c)[aspect][0])
                        for c in r["completions"] if aspect in uf_values(c)))
        def beats(x, y):
            return x[2] - y[2] > 0 and x[2] - y[2] >= margin
        if all_pairs:
            for i in range(len(rated)):
                for j in range(i + 1, len(rated)):
                    x, y = rated[i], rated[j]
                    if beats(x, y):
                        out.append((r["instruction"], x[1], y[1]))
                    elif beats(y, x):
                        out.append((r["instruction"], y[1], x[1]))
            continue
        if len(rated) < 2:
            continue
        best = rated[0]
        for x in rated[1:]:
            if x[2] > best[2]:
                best = x
        low = [x for x in rated if beats(best, x)]
        if not low:
            continue
        ph = sha(b"text\0" + r["instruction"].encode())
        k = int.from_bytes(hashlib.sha256(("%d:%s" % (seed, ph)).encode()).digest()[:8], "big") % len(low)
        out.append((r["instruction"], best[1], low[k][1]))
    return sorted(out)

def pref_kappa(items):
    cats = ["a", "b", "tie", "both_bad"]
    sw = {"a": "b", "b": "a", "tie": "tie", "both_bad": "both_bad"}
    t = {(x, y): 0.0 for x in cats for y in cats}
    for x, y in items:
        t[(x, y)] += 1
        t[(sw[x], sw[y])] += 1
    n = sum(t.values())
    po = sum(t[(c, c)] for c in cats) / n
    pe = sum((sum(t[(c, y)] for y in cats) / n) * (sum(t[(x, c)] for x in cats) / n) for c in cats)
    return (po - pe) / (1 - pe)

if mode == "mtbench":
    want = sorted(sum((mtbench_expect(records(f)) for f in args), []), key=repr)
    compare("comparisons", stored_comparisons({w[5] for w in want}), want)
elif mode == "alpaca":
    want = sorted(alpaca_expect(records(args[0])), key=repr)
    compare("comparisons", stored_comparisons({"alpaca_eval_gpt4"}), want)
elif mode == "ufratings":
    want = []
    for f in args:
        for r in records(f):
            for c in r["completions"]:
                for aspect, (v, hi) in uf_values(c).items():
                    want.append((r["instruction"], c["response"], aspect, v, 1.0, hi, "import:" + f.split("/")[-1].split(".")[0]))
    compare("ratings", [x for x in stored_ratings() if x[6].startswith("import:uf")], sorted(want))
elif mode == "single":
    want = [("Write a haiku about autumn.", "Leaves fall, slowly down\nthe river carries them home\ncold wind, quiet hills", "score", 8.0, 1.0, 10.0, "gpt-4/single-v1"),
            ("Write a haiku about autumn.", "Autumn is a season.", "score", 3.0, 1.0, 10.0, "gpt-4/single-v1"),
            (json.dumps([{"role": "user", "content": "What is 7 * 8?"}, {"role": "assistant", "content": "56"},
                         {"role": "user", "content": "And 7 * 9?"}], separators=(",", ":")), "63", "score", 10.0, 1.0, 10.0,
             "gpt-4/single-v1-multi-turn"),
            ("Name a prime number greater than 10.", "13", "score", 9.5, 1.0, 10.0, "author_2")]
    # the texts of the judge prompts, taken from the file, must be the ones above
    recs = records(args[0])
    for r, w in zip(recs, want):
        if "user_prompt" in r and (w[1] not in r["user_prompt"]):
            bad.append("reference text %r not in the file" % w[1])
    compare("ratings", [x for x in stored_ratings() if x[2] == "score"], sorted(want))
    for r in recs:
        if r.get("answer"):
            expect_gen(r["answer"], r["model"])
elif mode == "kto":
    want = sum((kto_expect(records(f)) for f in args), [])
    compare("feedback", sorted(stored_feedback(), key=repr), sorted(want, key=repr))
elif mode == "exportkto":
    # the lines export --format kto writes, in prompt then completion order
    # one prompt per canonical form, written in the form stored first
    order, lines, form = [], {}, {}
    recs = sum((records(f) for f in args[1:]), [])
    for (key, text, good), (raw, _, _) in zip(kto_expect(recs), kto_expect(recs, canon=False)):
        if key not in lines:
            order.append(key)
            lines[key] = []
            form[key] = raw
        prompt = form[key]
        if prompt[0] == "text":
            d = {"prompt": prompt[1], "completion": text, "label": bool(good)}
        else:
            d = {"prompt": [{"role": r, "content": c} for r, c in prompt[1]],
                 "completion": [{"role": "assistant", "content": text}], "label": bool(good)}
        lines[key].append(json.dumps(d, ensure_ascii=False) + "\n")
    with open(args[0], "w", encoding="utf-8") as f:
        f.write("".join("".join(lines[p]) for p in order))
    print("written")
    sys.exit(0)
elif mode == "derive":
    aspect, margin, all_pairs, seed, f = args[0], float(args[1]), args[2] == "all", int(args[3]), args[4]
    want = derive_expect(records(f), aspect, margin, all_pairs, seed)
    got = sorted((p[1], w, l) for p, w, l, v, _, _, _ in stored_comparisons({"ratings:" + aspect}))
    print("pairs %d" % len(want))
    compare("derived pairs", got, want)
elif mode == "agreement":
    human, judge = records(args[0]), records(args[1])
    hv = {r["question_id"]: r["winner"] for r in human if r.get("turn") == 1}
    m = {"model_a": "a", "model_b": "b", "tie": "tie", "tie (bothbad)": "both_bad"}
    items = [(m[r["winner"]], m[hv[r["question_id"]]]) for r in judge if r["question_id"] in hv]
    ab = [x for x in items if x[0] in ("a", "b") and x[1] in ("a", "b")]
    print("with_ties %d %.12f %.12f" % (len(items), sum(x == y for x, y in items) / len(items), pref_kappa(items)))
    print("without_ties %d %.12f %.12f" % (len(ab), sum(x == y for x, y in ab) / len(ab), pref_kappa(ab)))
    sys.exit(0)
print("ok" if not bad else "\n".join(bad))
EOF
check() { python3 "$T/check.py" "$@" 2>&1; }

# ---- MT-Bench pairwise judgments: humans and GPT-4 on the same pairs --------------------------
ok "import MT-Bench human judgments" dpo-db --db "$DB" import "$D/mtbench_human.jsonl"
is "MT-Bench human: summary" "$(summary)" \
	"mt-bench (pairwise judgments) (detected), source mtbench_human: 6 records, prompts 6 new / 0 duplicate, completions 12 new / 0 duplicate, comparisons 6 new / 0 duplicate, 0 rejected"
ok "import MT-Bench GPT-4 judgments" dpo-db --db "$DB" import --format mt-bench "$D/mtbench_gpt4.jsonl"
is "MT-Bench GPT-4: the same prompts and answers, new labels" "$(summary)" \
	"mt-bench (pairwise judgments), source mtbench_gpt4: 5 records, prompts 0 new / 5 duplicate, completions 0 new / 10 duplicate, comparisons 5 new / 0 duplicate, 0 rejected"
is "MT-Bench: prompts, answers, models, verdicts (ties and both-bad kept) and judges as the files say" \
	"$(check mtbench "$DB" "$D/mtbench_human.jsonl" "$D/mtbench_gpt4.jsonl")" ok
is "MT-Bench: human ids are humans, the GPT-4 judge a judge; no import annotator" \
	"$(python3 -c 'import sqlite3,sys; print(" ".join("%s=%s" % r for r in sqlite3.connect(sys.argv[1]).execute("SELECT name, kind FROM annotators ORDER BY name")))' "$DB")" \
	"author_0=human author_1=human expert_3=human gpt-4/pair-v2=judge"
dpo-db --db "$DB" agreement --json >"$T/ag.json"
is "agreement: judge vs human as computed from the files (ties in)" \
	"$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["judge_vs_human"]
for k in ("with_ties", "without_ties"): print("%s %d %.12f %.12f" % (k, m[k]["n"], m[k]["agreement"], m[k]["kappa"]))' "$T/ag.json")" \
	"$(check agreement "$DB" "$D/mtbench_human.jsonl" "$D/mtbench_gpt4.jsonl")"
is "agreement: 3 of 5 labels agree with ties, 1 of 3 without" \
	"$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["judge_vs_human"]
print(m["with_ties"]["n"], m["with_ties"]["agreement"], m["without_ties"]["n"], round(m["without_ties"]["agreement"], 6))' "$T/ag.json")" \
	"5 0.6 3 0.333333"

# a later turn after two different answers is two prompts: refused, named
python3 - "$D/mtbench_human.jsonl" >"$T/turn2.jsonl" <<'EOF'
import json, sys
r = json.loads(open(sys.argv[1], encoding="utf-8").readline())
r["turn"] = 2
print(json.dumps(r))
EOF
dpo-db --db "$DB" import "$T/turn2.jsonl" >"$T/.out" 2>"$T/.err"
is "MT-Bench turn 2 after different first answers: exit 1" "$?" 1
like "MT-Bench turn 2: FILE:LINE and the reason" "$(cat "$T/.err")" \
	"turn2.jsonl:1: the conversations before the judged answer differ (message 1)"
printf '{"model_a": "x", "model_b": "y", "winner": "model_c", "conversation_a": [], "conversation_b": []}\n' >"$T/badwin.jsonl"
dpo-db --db "$DB" import "$T/badwin.jsonl" >"$T/.out" 2>"$T/.err"
is "MT-Bench unknown winner: exit 1" "$?" 1
like "MT-Bench unknown winner: the field" "$(cat "$T/.err")" \
	"badwin.jsonl:1: field \"winner\" must be \"model_a\", \"model_b\", \"tie\" or \"tie (bothbad)\""

# ---- AlpacaEval annotations: fractional preferences ---------------------------------------------
ok "import AlpacaEval annotations" dpo-db --db "$DB" import "$D/alpaca_eval.jsonl"
is "AlpacaEval: summary" "$(summary)" \
	"alpaca-eval (annotations) (detected), source alpaca_eval: 7 records, prompts 7 new / 0 duplicate, completions 14 new / 0 duplicate, comparisons 7 new / 0 duplicate, 0 rejected"
is "AlpacaEval: verdicts by the rule (p < 1.5 output_1, > 1.5 output_2, 1.5 or 0 tie), confidence |p - 1.5| * 2, generators" \
	"$(check alpaca "$DB" "$D/alpaca_eval.jsonl")" ok
printf '{"instruction": "Q", "output_1": "A", "output_2": "B", "preference": 2.5}\n{"instruction": "Q2", "output_1": "A", "output_2": "B", "preference": null}\n' >"$T/badpref.jsonl"
dpo-db --db "$DB" import --skip-bad "$T/rej.jsonl" "$T/badpref.jsonl" >"$T/.out" 2>"$T/.err"
is "AlpacaEval bad preferences: exit 1 (no good record)" "$?" 1
is "AlpacaEval bad preferences: both reasons" \
	"$(python3 -c 'import json,sys; [print(d["line"], d["reason"]) for d in map(json.loads, open(sys.argv[1]))]' "$T/rej.jsonl")" \
	"1 field \"preference\" must be a number from 1 to 2 (or 0 for a tie)
2 field \"preference\" is missing (the annotator gave none)"

# ---- ratings: UltraFeedback raw and MT-Bench single grading ------------------------------------
ok "import UltraFeedback raw with ratings" dpo-db --db "$DB" import "$D/uf_raw.jsonl"
is "UltraFeedback raw: summary counts the ratings" "$(summary)" \
	"ultrafeedback (raw) (detected), source uf_raw: 2 records, prompts 2 new / 0 duplicate, completions 7 new / 0 duplicate, comparisons 9 new / 0 duplicate, 0 rejected, ratings 32 new / 0 duplicate"
is "UltraFeedback raw: every aspect's rating (N/A left out, a list's mean), fine-grained and overall scores, with their scales" \
	"$(check ufratings "$DB" "$D/uf_raw.jsonl")" ok
ok "import MT-Bench single grading" dpo-db --db "$DB" import "$D/mtbench_single.jsonl"
is "MT-Bench single: summary" "$(summary)" \
	"mt-bench-single (ratings) (detected), source mtbench_single: 4 records, prompts 1 new / 3 duplicate, completions 3 new / 1 duplicate, comparisons 0 new / 0 duplicate, 0 rejected, ratings 4 new / 0 duplicate"
is "MT-Bench single: question and answer out of the judge prompt (one turn and two), score on 1..10 by the judge" \
	"$(check single "$DB" "$D/mtbench_single.jsonl")" ok
printf '{"question_id": 1, "model": "m", "judge": ["gpt-4", "single-v1"], "question": "Q", "answer": "A", "score": -1}\n' >"$T/noscore.jsonl"
dpo-db --db "$DB" import "$T/noscore.jsonl" >"$T/.out" 2>"$T/.err"
is "MT-Bench single score -1: exit 1" "$?" 1
like "MT-Bench single score -1: the reason" "$(cat "$T/.err")" \
	"noscore.jsonl:1: field \"score\" is -1: the judge's grade could not be read"
dpo-db --db "$DB" stats --json >"$T/st.json"
is "stats: ratings by aspect" \
	"$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["ratings_by_aspect"]
print(" ".join("%s=%d/%d/%d" % (k, v["ratings"], v["completions"], v["annotators"]) for k, v in sorted(r.items())))' "$T/st.json")" \
	"fine-grained_score=4/4/1 helpfulness=7/7/1 honesty=6/6/1 instruction_following=4/4/1 overall_score=7/7/1 score=4/4/3 truthfulness=4/4/1"
dpo-db --db "$DB" stats >"$T/st.txt"
like "stats text: the ratings section" "$(cat "$T/st.txt")" "ratings by aspect"
like "stats text: helpfulness's row" "$(cat "$T/st.txt")" "helpfulness                   7            7           1"

# ---- derive-pairs from ratings --------------------------------------------------------------
python3 - >"$T/ufmany.jsonl" <<'EOF'
import json
x = 12345
def rnd(n):
    global x
    x = (x * 1103515245 + 12345) % 2**31
    return x % n
for i in range(40):
    comps = []
    for j in range(2 + rnd(4)):
        comps.append({"model": "m%d" % j, "response": "answer %d to question %d" % (j, i),
                      "annotations": {"helpfulness": {"Rating": str(1 + rnd(5))},
                                      "honesty": {"Rating": "N/A" if rnd(6) == 0 else str(1 + rnd(5))}}})
    print(json.dumps({"instruction": "Question %d: what is %d + %d?" % (i, i, 2 * i), "completions": comps}))
EOF
DB2=$T/d.db
ok "import generated UltraFeedback ratings" dpo-db --db "$DB2" import --quiet --source ufmany "$T/ufmany.jsonl"
derive() { # name margin all|one seed
	if [ "$3" = all ]; then set -- "$1" "$2" "$3" "$4" --all; else set -- "$1" "$2" "$3" "$4"; fi
	rm -f "$T/x.db" && cp "$DB2" "$T/x.db"
	ok "derive-pairs $1 margin $2 $3 seed $4" dpo-db --db "$T/x.db" derive-pairs --from-ratings "$1" --min-margin "$2" --seed "$4" $5
	is "derive-pairs $1 margin $2 $3 seed $4: the pairs of the reference" \
		"$(check derive "$T/x.db" "$1" "$2" "$3" "$4" "$T/ufmany.jsonl" | tail -n 1)" ok
}
derive helpfulness 0 one 0
derive helpfulness 0 one 7
derive helpfulness 2 one 3
derive honesty 1 one 0
derive helpfulness 2 all 0
derive honesty 0 all 0
ok "derive-pairs again adds nothing" dpo-db --db "$T/x.db" derive-pairs --from-ratings honesty --all
like "derive-pairs again: all already there" "$(cat "$T/.out")" ", 0 new, "
is "derive-pairs: each invocation is a run; the pairs name the one that added them" \
	"$(python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(" ".join(r[0] for r in c.execute("SELECT kind || \":\" || status FROM runs WHERE kind <> \"import\" ORDER BY id")),
	c.execute("SELECT count(*) = sum(run_id = (SELECT min(id) FROM runs WHERE kind = \"derive\")) FROM comparisons WHERE annotator_id = (SELECT id FROM annotators WHERE name = \"ratings:honesty\")").fetchone()[0])' "$T/x.db")" \
	"derive:ok derive:ok 1"
is "derive-pairs: the annotator is ratings:ASPECT of kind import" \
	"$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT kind FROM annotators WHERE name = ?", ("ratings:honesty",)).fetchone()[0])' "$T/x.db")" import
cp "$DB2" "$T/y.db"
ok "derive-pairs --dry-run" dpo-db --db "$T/y.db" derive-pairs --from-ratings helpfulness --dry-run --json
is "derive-pairs --dry-run counts the reference's pairs" \
	"$(python3 -c 'import json,sys; print("pairs %d" % json.load(open(sys.argv[1]))["pairs"])' "$T/.out")" \
	"$(check derive "$T/y.db" helpfulness 0 one 0 "$T/ufmany.jsonl" | head -n 1)"
is "derive-pairs --dry-run writes nothing" \
	"$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM annotators WHERE name LIKE ?", ("ratings:%",)).fetchone()[0])' "$T/y.db")" 0
dpo-db --db "$T/y.db" derive-pairs --from-ratings nosuch >"$T/.out" 2>"$T/.err"
is "derive-pairs of an aspect nobody rated: exit 1" "$?" 1
like "derive-pairs of an aspect nobody rated: lists the aspects" "$(cat "$T/.err")" \
	"no completion is rated on \"nosuch\"; the aspects rated are: helpfulness, honesty"
dpo-db --db "$T/y.db" derive-pairs >"$T/.out" 2>"$T/.err"
is "derive-pairs without --from-ratings: exit 2" "$?" 2

# ---- KTO: binary feedback, both layouts; export --format kto ----------------------------------
DB3=$T/k.db
ok "import TRL KTO" dpo-db --db "$DB3" import "$D/kto_trl.jsonl"
is "TRL KTO: summary" "$(summary)" \
	"kto (trl) (detected), source kto_trl: 4 records, prompts 3 new / 1 duplicate, completions 4 new / 0 duplicate, comparisons 0 new / 0 duplicate, 0 rejected, feedback 4 new / 0 duplicate"
ok "import LLaMA-Factory KTO" dpo-db --db "$DB3" import --format kto "$D/kto_llamafactory.jsonl"
is "LLaMA-Factory KTO: summary" "$(summary)" \
	"kto (llama-factory), source kto_llamafactory: 3 records, prompts 2 new / 1 duplicate, completions 3 new / 0 duplicate, comparisons 0 new / 0 duplicate, 0 rejected, feedback 3 new / 0 duplicate"
is "KTO: prompts, completions and labels as the files say" \
	"$(check kto "$DB3" "$D/kto_trl.jsonl" "$D/kto_llamafactory.jsonl")" ok
check exportkto "$DB3" "$T/kto_want.jsonl" "$D/kto_trl.jsonl" "$D/kto_llamafactory.jsonl" >/dev/null
ok "export --format kto" dpo-db --db "$DB3" export --format kto "$T/kto_out.jsonl"
like "export --format kto: says what it wrote" "$(cat "$T/.err")" "wrote 7 binary labels (kto)"
ok "export --format kto: TRL's layout, byte for byte" cmp "$T/kto_out.jsonl" "$T/kto_want.jsonl"
ok "export --format trl ignores binary feedback" dpo-db --db "$DB3" export --format trl "$T/pairs.jsonl"
is "export --format trl: no pairs" "$(wc -c <"$T/pairs.jsonl" | tr -d ' ')" 0
ok "kto export -> import -> export" sh -c 'dpo-db --db "$1/k2.db" import --quiet "$1/kto_out.jsonl" &&
	dpo-db --db "$1/k2.db" export --format kto "$1/kto_again.jsonl" && cmp "$1/kto_out.jsonl" "$1/kto_again.jsonl"' sh "$T"
dpo-db --db "$DB3" stats --json >"$T/st.json"
is "stats: feedback good and bad" "$(python3 -c 'import json,sys; f=json.load(open(sys.argv[1]))["feedback"]; print(f["good"], f["bad"])' "$T/st.json")" "4 3"
printf '{"prompt": "Q", "completion": "A", "label": true}\n{"prompt": "Q", "completion": "A", "label": false}\n{"prompt": "Q", "completion": "A", "label": true}\n' >"$T/kconf.jsonl"
ok "KTO: the same completion marked both ways" dpo-db --db "$T/kc.db" import "$T/kconf.jsonl"
is "KTO: the later opposite mark is a conflict, the same mark a duplicate" "$(summary)" \
	"kto (trl) (detected), source kconf: 3 records, prompts 1 new / 2 duplicate, completions 1 new / 2 duplicate, comparisons 0 new / 0 duplicate, 0 rejected, feedback 1 new / 1 duplicate / 1 conflicting (the first label is kept)"
is "KTO: the first mark stays" \
	"$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT group_concat(good) FROM feedback").fetchone()[0])' "$T/kc.db")" 1
printf '{"prompt": "Q", "completion": "A", "label": "yes"}\n' >"$T/kbad.jsonl"
dpo-db --db "$DB3" import --format kto "$T/kbad.jsonl" >"$T/.out" 2>"$T/.err"
is "KTO label not a boolean: exit 1" "$?" 1
like "KTO label not a boolean: the field" "$(cat "$T/.err")" "kbad.jsonl:1: field \"label\" must be true or false"

# ---- --annotator, --annotator-kind, an annotator per record -----------------------------------
DB4=$T/a.db
printf '{"prompt": "P1", "chosen": "A", "rejected": "B"}\n{"prompt": "P2", "chosen": "C", "rejected": "D"}\n' >"$T/mine.jsonl"
ok "--annotator alice" dpo-db --db "$DB4" import --annotator alice "$T/mine.jsonl"
ok "--annotator gpt4o --annotator-kind judge" dpo-db --db "$DB4" import --annotator gpt4o --annotator-kind judge \
	--source other "$T/mine.jsonl"
printf '{"prompt": "P1", "chosen": "A", "rejected": "B", "annotator": "bob"}\n{"prompt": "P2", "chosen": "D", "rejected": "C", "annotator": "carol"}\n{"prompt": "P3", "chosen": "E", "rejected": "F"}\n' >"$T/per.jsonl"
ok "an annotator field per record" dpo-db --db "$DB4" import --annotator dave "$T/per.jsonl"
is "annotators: --annotator (human by default), --annotator-kind, per record, --annotator for the rest; no import:SOURCE" \
	"$(python3 -c 'import sqlite3,sys; print(" ".join("%s=%s:%d" % r for r in sqlite3.connect(sys.argv[1]).execute(
	"SELECT a.name, a.kind, count(c.id) FROM annotators a LEFT JOIN comparisons c ON c.annotator_id = a.id GROUP BY a.id ORDER BY a.name")))' "$DB4")" \
	"alice=human:2 bob=human:1 carol=human:1 dave=human:1 gpt4o=judge:2"
is "per-record annotators: their own verdicts" \
	"$(python3 -c 'import sqlite3,sys; print(" ".join("%s>%s" % r for r in sqlite3.connect(sys.argv[1]).execute(
	"SELECT CASE c.verdict WHEN \"a\" THEN x.text ELSE y.text END, a.name FROM comparisons c JOIN annotators a ON a.id = c.annotator_id JOIN completions x ON x.id = c.completion_a JOIN completions y ON y.id = c.completion_b WHERE a.name IN (\"bob\", \"carol\", \"dave\") ORDER BY a.name")))' "$DB4")" \
	"A>bob D>carol E>dave"
is "human labels count as labelled pairs, a judge's do not (dpo-db check)" "$(dpo-db --db "$DB4" check >/dev/null 2>&1; echo $?)" 0
dpo-db --db "$DB4" import --annotator alice --annotator-kind judge --source again "$T/mine.jsonl" >"$T/.out" 2>"$T/.err"
is "an annotator of another kind: exit 1" "$?" 1
like "an annotator of another kind: the reason" "$(cat "$T/.err")" "annotator \"alice\" exists already as a human, not a judge"
ok "MT-Bench with --annotator-kind judge" dpo-db --db "$T/m.db" import --annotator-kind judge "$D/mtbench_human.jsonl"
is "--annotator-kind applies to the annotators records name" \
	"$(python3 -c 'import sqlite3,sys; print(" ".join(r[0] for r in sqlite3.connect(sys.argv[1]).execute("SELECT DISTINCT kind FROM annotators")))' "$T/m.db")" judge
dpo-db --db "$DB4" import --annotator-kind robot "$T/mine.jsonl" >"$T/.out" 2>"$T/.err"
is "--annotator-kind robot: exit 2" "$?" 2

# ---- re-importing adds nothing --------------------------------------------------------------
ok "re-import every file" dpo-db --db "$DB" import "$D/mtbench_human.jsonl" "$D/mtbench_gpt4.jsonl" "$D/alpaca_eval.jsonl" \
	"$D/uf_raw.jsonl" "$D/mtbench_single.jsonl"
is "re-import: nothing new" "$(grep -c ' [1-9][0-9]* new' "$T/.out")" 0
like "re-import: ratings counted as duplicates" "$(cat "$T/.out")" "ratings 0 new / 32 duplicate"
ok "re-import the KTO files" dpo-db --db "$DB3" import "$D/kto_trl.jsonl" "$D/kto_llamafactory.jsonl"
is "re-import KTO: nothing new" "$(grep -c ' [1-9][0-9]* new' "$T/.out")" 0
like "re-import KTO: feedback counted as duplicates" "$(cat "$T/.out")" "feedback 0 new / 4 duplicate"

done_testing
