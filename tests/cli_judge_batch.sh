#!/bin/sh
# dpo-judge --batch (#15) against tests/fake_batch_server.py: the OpenAI Batch
# API (JSONL upload, /batches, output and error files) and Anthropic Message
# Batches. The requests of a batch are the bodies the normal path sends
# (compared with what tests/fake_llm_server.py receives from a normal run),
# answers go back to the right pair and order, cost is half the price,
# a stopped or killed run picks its batch up again without submitting it
# twice (its pairs stay claimed meanwhile), --batch-status [--wait],
# failed and expired requests leave their pairs unlabelled, and a malformed
# results line is an error naming the batch and the line.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_judge_common.sh"
KEY=sk-batch-7c1d2e3f4a5b
export OPENAI_API_KEY=$KEY ANTHROPIC_API_KEY=$KEY
BPID=

start_batch() { # NAME [fake_batch_server.py options]: sets $BURL, $BAURL, log $T/NAME.log
	_bn=$1; shift
	rm -f "$T/$_bn.port"
	$PY "$top_srcdir/tests/fake_batch_server.py" --port-file "$T/$_bn.port" --log "$T/$_bn.log" \
		--require-key "$KEY" "$@" &
	BPID=$!
	_i=0
	while [ ! -s "$T/$_bn.port" ] && [ $_i -lt 100 ]; do sleep 0.05; _i=$((_i + 1)); done
	[ -s "$T/$_bn.port" ] || { echo "Bail out! the fake batch server did not start"; exit 1; }
	BURL="http://127.0.0.1:$(cat "$T/$_bn.port")/v1"
	BAURL="http://127.0.0.1:$(cat "$T/$_bn.port")"
	touch "$T/$_bn.log"
}
stop_batch() {
	[ -n "$BPID" ] && { kill "$BPID" 2>/dev/null; wait "$BPID" 2>/dev/null; }
	BPID=
}
trap 'stop_batch; stop_server; rm -rf "$T"' EXIT

# calls LOG METHOD PATH: how many such requests the fake batch server got
calls() {
	$PY -c 'import json,sys
print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["method"] == sys.argv[2] and json.loads(l)["path"] == sys.argv[3]))' "$@"
}
# wait_for LOG METHOD PATH N: until the server got N such requests (10 s at most)
wait_for() {
	_i=0
	while [ "$(calls "$1" "$2" "$3")" -lt "$4" ] && [ $_i -lt 200 ]; do sleep 0.05; _i=$((_i + 1)); done
}

# check_requests PROVIDER BATCHLOG REFLOG: the batch's requests against the
# bodies a normal run sent (REFLOG, fake_llm_server.py's log): the same set of
# bodies, custom_ids unique and allowed by both providers, pair and order in
# the custom_id matching the texts shown first, the key on every call
check_requests() {
	$PY - "$@" "$KEY" <<'PY'
import json, re, sys
prov, blog, rlog, key = sys.argv[1:5]
recs = [json.loads(l) for l in open(blog)]
ref = sorted(json.dumps(json.loads(l)["body"], sort_keys=True) for l in open(rlog))
if prov == "openai":
    ups = [r for r in recs if r["path"] == "/v1/files"]
    assert len(ups) == 1 and ups[0]["body"]["purpose"] == "batch", "one upload, purpose batch"
    lines = ups[0]["body"]["file"]
    for l in lines:
        assert l["method"] == "POST" and l["url"] == "/v1/chat/completions", l
    items = [(l["custom_id"], l["body"]) for l in lines]
    for r in recs:
        assert r["headers"].get("authorization") == "Bearer " + key, r["path"]
else:
    subs = [r for r in recs if r["path"] == "/v1/messages/batches" and r["method"] == "POST"]
    assert len(subs) == 1, "one submission"
    items = [(q["custom_id"], q["params"]) for q in subs[0]["body"]["requests"]]
    for r in recs:
        assert r["headers"].get("x-api-key") == key and r["headers"].get("anthropic-version"), r["path"]
ids = [i for i, _ in items]
assert len(set(ids)) == len(ids), "custom_ids unique"
got = sorted(json.dumps(b, sort_keys=True) for _, b in items)
assert got == ref, "bodies differ from the normal path's:\n%s\n%s" % (got[:1], ref[:1])
mark = re.compile(r"<<<BEGIN ([0-9a-f]+)>>>\n(.*?)\n<<<END \1>>>", re.S)
for cid, b in items:
    m = re.fullmatch(r"c(\d+)_(\d+)_o([01])_([0-9a-f]{16})", cid)
    assert m and len(cid) <= 64, cid
    ca, cb, order = int(m.group(1)), int(m.group(2)), int(m.group(3))
    first = mark.findall(b["messages"][-1]["content"])[1][1]
    shown = cb if order == 1 else ca  # seeded ids: completion k answers j=(k-1)%3 of question (k-1)//3
    assert first.startswith("Answer %d to question %d" % ((shown - 1) % 3, (shown - 1) // 3)), (cid, first[:30])
print(len(items))
PY
}

# half_price SUMMARY IN OUT: cost_usd of the summary is half the list price
half_price() {
	$PY - "$@" <<'PY'
import json, sys
s = json.loads(open(sys.argv[1]).read())
want = (s["tokens"]["input"] * float(sys.argv[2]) + s["tokens"]["output"] * float(sys.argv[3])) / 1e6 / 2
assert s["tokens"]["input"] > 0 and abs(s["cost_usd"] - want) <= 1e-12 + 1e-9 * want, (s["cost_usd"], want)
PY
}

labels() { "$DBTOOL" dump "$1" | awk '{print $1, $2, $3, $4, $6}' | sort; }
# status DB: --batch-status's line of batch_1, blanks squeezed, the date as DATE
status() { dpo-judge --db "$1" --batch-status | grep batch_1 | tr -s ' ' | sed 's/ 20[0-9-]*T[0-9:]*Z / DATE /'; }

# ---- usage ------------------------------------------------------------------------
"$DBTOOL" seed "$T/u.db" 1 2
dpo-judge --db "$T/u.db" --provider exec --command true --batch >/dev/null 2>&1
is "--batch with --provider exec: usage error" "$?" 2
dpo-judge --db "$T/u.db" --wait >/dev/null 2>&1
is "--wait without --batch-status: usage error" "$?" 2
is "--batch-status on a store without batches" "$(dpo-judge --db "$T/u.db" --batch-status --json)" "[]"

# ---- OpenAI: requests, answers, cost, status ----------------------------------------
start_server ref
"$DBTOOL" seed "$T/o.db" 4 3
cp "$T/o.db" "$T/oref.db"
dpo-judge --db "$T/oref.db" --model gpt-4o-mini --base-url "$URL" --json >"$T/oref.json" 2>"$T/oref.err"
is "openai reference run (normal path): exit 0" "$?" 0
start_batch ob
dpo-judge --db "$T/o.db" --model gpt-4o-mini --base-url "$BURL" --batch --poll-interval 0.05 --json \
	>"$T/o.json" 2>"$T/o.err"
is "openai batch: exit 0" "$?" 0
is "openai batch: 12 pairs judged" "$(jget "$T/o.json" judged)" 12
is "openai: the JSONL holds the normal path's 24 bodies, custom_ids of pair and order" \
	"$(check_requests openai "$T/ob.log" "$T/ref.log" 2>&1)" 24
is "openai: one batch created" "$(calls "$T/ob.log" POST /v1/batches)" 1
ok "openai: polled until completed" test "$(calls "$T/ob.log" GET /v1/batches/batch_1)" -ge 3
is "openai: output file downloaded" "$(calls "$T/ob.log" GET /v1/files/file-out-batch_1/content)" 1
is "openai: the same labels as the normal path (both orders to the right pair)" "$(labels "$T/o.db")" \
	"$(labels "$T/oref.db")"
is "openai: every pair consistent" "$(jget "$T/o.json" consistent)" 12
ok "openai: cost at half of gpt-4o-mini's price" half_price "$T/o.json" 0.15 0.60
is "openai: half the normal run's cost" \
	"$($PY -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); print(abs(2*a["cost_usd"]-b["cost_usd"]) < 1e-12)' "$T/o.json" "$T/oref.json")" True
like "openai: progress with counts" "$(cat "$T/o.err")" "batch batch_1: in_progress, 1 of 24 requests done"
like "--batch-status: the batch, provider, status, counts, created, state, judge" "$(status "$T/o.db")" \
	"1 batch_1 openai completed 24/24 0 DATE collected judge:openai:gpt-4o-mini:"
is "--batch-status: a header" "$(dpo-judge --db "$T/o.db" --batch-status | head -1 | tr -s ' ')" \
	"ID BATCH PROVIDER STATUS DONE/ALL FAILED CREATED STATE JUDGE"
dpo-judge --db "$T/o.db" --model gpt-4o-mini --base-url "$BURL" --batch --poll-interval 0.05 --json \
	>"$T/o2.json" 2>/dev/null
is "openai: a rerun with every pair labelled submits nothing" \
	"$(jget "$T/o2.json" pairs)/$(calls "$T/ob.log" POST /v1/files)" 0/1

# the cache answers what it can: a --no-swap run cached one order of each
# pair, the batch holds only the other orders
"$DBTOOL" seed "$T/c.db" 4 3
dpo-judge --db "$T/c.db" --model gpt-4o-mini --base-url "$BURL" --no-swap -q >/dev/null 2>&1
dpo-judge --db "$T/c.db" --model gpt-4o-mini --base-url "$BURL" --batch --poll-interval 0.05 --json \
	>"$T/c.json" 2>/dev/null
is "cache first: exit 0" "$?" 0
is "cache first: 12 pairs judged, 12 answers from the cache, 12 requests sent" \
	"$(jget "$T/c.json" judged)/$(jget "$T/c.json" cached)/$(jget "$T/c.json" sent)" 12/12/12
is "cache first: the batch held 12 requests" "$($PY -c '
import json, sys
ups = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["path"] == "/v1/files"]
print(len(ups[-1]["body"]["file"]))' "$T/ob.log")" 12
is "cache first: both orders agree on every pair" "$(jget "$T/c.json" consistent)" 12

# --dry-run estimates at the batch price
"$DBTOOL" seed "$T/r0.db" 2 2
dpo-judge --db "$T/r0.db" --model gpt-4o --base-url "$BURL" --dry-run --json >"$T/d1.json" 2>/dev/null
dpo-judge --db "$T/r0.db" --model gpt-4o --base-url "$BURL" --dry-run --json --batch >"$T/d2.json" 2>/dev/null
is "--dry-run --batch: half the estimate" "$($PY -c '
import json, sys
a, b = (json.load(open(f))["estimated_cost_usd"] for f in sys.argv[1:3])
print(a > 0 and abs(b - a / 2) < 1e-12)' "$T/d1.json" "$T/d2.json")" True

# reasoning models: the batch's bodies are shaped as the normal path's
"$DBTOOL" seed "$T/r.db" 2 2
dpo-judge --db "$T/r.db" --model o3-mini --base-url "$BURL" --batch --poll-interval 0.05 -q >/dev/null 2>&1
is "o3-mini batch: exit 0" "$?" 0
is "o3-mini: max_completion_tokens, no temperature, in every line" "$($PY -c '
import json, sys
ups = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["path"] == "/v1/files"]
b = [x["body"] for x in ups[-1]["body"]["file"]]
print(len(b), all("max_completion_tokens" in x and "temperature" not in x and "max_tokens" not in x
                  and x["model"] == "o3-mini" for x in b))' "$T/ob.log")" "4 True"
stop_batch

# ---- resume: Ctrl-C, a concurrent normal run, kill -9, --batch-status --wait --------------
start_batch rb --hold "$T/hold"
touch "$T/hold"
"$DBTOOL" seed "$T/k.db" 4 3
BATCH="dpo-judge --db $T/k.db --model gpt-4o-mini --base-url $BURL --batch --poll-interval 0.05"
$BATCH >"$T/k1.out" 2>"$T/k1.err" &
JP=$!
wait_for "$T/rb.log" GET /v1/batches/batch_1 2
kill -INT $JP
wait $JP
is "Ctrl-C while polling: exit 130" "$?" 130
like "Ctrl-C: the batch stays submitted, how to resume" "$(cat "$T/k1.err")" \
	"batch batch_1 stays submitted; run the same command again"
like "--batch-status: pending while it runs" "$(status "$T/k.db")" "batch_1 openai in_progress "
like "--batch-status: not collected yet" "$(status "$T/k.db")" " DATE pending judge:"
: >"$T/ref.log"
dpo-judge --db "$T/k.db" --model gpt-4o-mini --base-url "$URL" --json >"$T/kn.json" 2>/dev/null
is "a normal run meanwhile leaves the batch's pairs alone (claimed)" \
	"$(jget "$T/kn.json" judged)/$(nreq ref)" 0/0
n0=$(calls "$T/rb.log" GET /v1/batches/batch_1)
$BATCH >"$T/k2.out" 2>"$T/k2.err" &
JP=$!
wait_for "$T/rb.log" GET /v1/batches/batch_1 $((n0 + 1))
kill -9 $JP
wait $JP 2>/dev/null
like "the second run picked the batch up" "$(cat "$T/k2.err")" "picking up batch batch_1"
dpo-judge --db "$T/k.db" --model gpt-4o-mini --base-url "$URL" --json >"$T/kn2.json" 2>/dev/null
is "after kill -9 the pairs are still claimed by the batch" "$(jget "$T/kn2.json" judged)/$(nreq ref)" 0/0
rm -f "$T/hold"
dpo-judge --db "$T/k.db" --batch-status --wait --poll-interval 0.05 >"$T/kw.txt" 2>"$T/kw.err"
is "--batch-status --wait: exit 0" "$?" 0
like "--batch-status --wait: waited until completed (not yet collected)" \
	"$(grep batch_1 "$T/kw.txt" | tr -s ' ')" "batch_1 openai completed 24/24 0 "
like "--batch-status --wait: not collected" "$(grep batch_1 "$T/kw.txt")" " pending "
$BATCH --json >"$T/k3.json" 2>"$T/k3.err"
is "resume: exit 0" "$?" 0
is "resume: the 12 pairs judged" "$(jget "$T/k3.json" judged)" 12
is "resume: the batch was not submitted again" \
	"$(calls "$T/rb.log" POST /v1/files)/$(calls "$T/rb.log" POST /v1/batches)" 1/1
is "resume: 12 comparisons" "$("$DBTOOL" count "$T/k.db")" 12
like "resume: collected" "$(status "$T/k.db")" " collected "
stop_batch

# ---- failed and expired requests; a malformed results line -----------------------------
# expected labelled pairs: those none of whose requests (numbered from 1 in
# the order of the batch) is a multiple of 5 (expired) or 7 (errored)
labelled() {
	$PY - "$1" "$2" <<'PY'
import json, re, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
if sys.argv[2] == "openai":
    ids = [x["custom_id"] for x in [r for r in recs if r["path"] == "/v1/files"][-1]["body"]["file"]]
else:
    ids = [q["custom_id"] for q in [r for r in recs if r["method"] == "POST"][-1]["body"]["requests"]]
bad = {re.sub(r"_o[01]_.*", "", c) for i, c in enumerate(ids, 1) if i % 5 == 0 or i % 7 == 0}
print(len({re.sub(r"_o[01]_.*", "", c) for c in ids} - bad))
PY
}
start_batch fb --expire-every 5 --error-every 7
"$DBTOOL" seed "$T/f.db" 4 3
dpo-judge --db "$T/f.db" --model gpt-4o-mini --base-url "$BURL" --batch --poll-interval 0.05 --json \
	>"$T/f.json" 2>"$T/f.err"
is "openai with failed requests: exit 1" "$?" 1
want=$(labelled "$T/fb.log" openai)
is "openai: only pairs with both answers labelled ($want)" "$("$DBTOOL" count "$T/f.db")" "$want"
like "openai: expired requests reported" "$(cat "$T/f.err")" "first: expired"
like "openai: failed requests reported with the error file's message" "$(cat "$T/f.err")" "HTTP 400: bad request"
is "openai: error file downloaded" "$(calls "$T/fb.log" GET /v1/files/file-err-batch_1/content)" 1
stop_batch

start_batch mb --malformed-line 3
"$DBTOOL" seed "$T/m.db" 4 3
dpo-judge --db "$T/m.db" --model gpt-4o-mini --base-url "$BURL" --batch --poll-interval 0.05 -q >/dev/null 2>"$T/m.err"
is "malformed results line: exit 1" "$?" 1
like "malformed results line: the batch and the line named" "$(cat "$T/m.err")" \
	"batch batch_1: output file line 3: not a JSON object"
is "malformed results line: nothing stored" "$("$DBTOOL" count "$T/m.db")" 0
like "malformed results line: the batch stays to collect" "$(status "$T/m.db")" " pending "
stop_batch

# ---- Anthropic ------------------------------------------------------------------------
: >"$T/ref.log"
"$DBTOOL" seed "$T/a.db" 4 3
cp "$T/a.db" "$T/aref.db"
dpo-judge --db "$T/aref.db" --provider anthropic --model claude-sonnet-4-5 --base-url "$AURL" --json \
	>"$T/aref.json" 2>/dev/null
is "anthropic reference run: exit 0" "$?" 0
start_batch ab --expire-every 5 --error-every 7
dpo-judge --db "$T/a.db" --provider anthropic --model claude-sonnet-4-5 --base-url "$BAURL" --batch \
	--poll-interval 0.05 --json >"$T/a.json" 2>"$T/a.err"
is "anthropic batch with failed requests: exit 1" "$?" 1
is "anthropic: the requests hold the normal path's 24 bodies as params, custom_ids of pair and order" \
	"$(check_requests anthropic "$T/ab.log" "$T/ref.log" 2>&1)" 24
ok "anthropic: polled until ended" test "$(calls "$T/ab.log" GET /v1/messages/batches/msgbatch_1)" -ge 3
is "anthropic: results read from results_url" \
	"$(calls "$T/ab.log" GET /v1/messages/batches/msgbatch_1/results)" 1
want=$(labelled "$T/ab.log" anthropic)
is "anthropic: pairs with both answers labelled ($want)" "$("$DBTOOL" count "$T/a.db")" "$want"
labels "$T/a.db" >"$T/alab"
is "anthropic: their labels are the normal path's" "$(labels "$T/aref.db" | grep -F -x -f "$T/alab")" \
	"$(cat "$T/alab")"
like "anthropic: errored and expired requests reported" "$(cat "$T/a.err")" "errored: bad request"
like "anthropic: expired reported" "$(cat "$T/a.err")" "expired"
ok "anthropic: cost at half of claude-sonnet-4-5's price" half_price "$T/a.json" 3 15
: >"$T/ref.log"
dpo-judge --db "$T/a.db" --provider anthropic --model claude-sonnet-4-5 --base-url "$AURL" --json \
	>"$T/an.json" 2>/dev/null
is "anthropic: a normal run then judges the unlabelled pairs" "$(jget "$T/an.json" judged)" "$((12 - want))"
is "anthropic: 12 comparisons in the end" "$("$DBTOOL" count "$T/a.db")" 12
stop_batch
stop_server

done_testing
