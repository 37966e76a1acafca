#!/bin/sh
# dpo-judge's engine (#15): full concurrency over HTTP/1.1 from the first
# request, "sent" counts what left, libcurl's re-sends count as retries, an
# unreachable server stops the run at once, and after a shared 429 pause the
# requests resume spread out without spending each other's retries.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/cli_judge_common.sh"

# req_times NAME: the seconds from the first logged request to each one
req_times() {
	$PY - "$T/$1.log" <<'PY'
import json, sys
t = [json.loads(l)["t"] for l in open(sys.argv[1])]
print(" ".join("%.3f" % (x - t[0]) for x in t))
PY
}

# HTTP/1.1 from the first request: 16 requests at once, not 1 then 15
DB=$T/c.db
"$DBTOOL" seed "$DB" 16 2
start_server c --latency 1
dpo-judge --db "$DB" --model m --base-url "$URL" --no-swap --concurrency 16 --json >"$T/c.json" 2>"$T/c.err"
is "concurrency: 16 pairs judged" "$?/$(jget "$T/c.json" judged)" 0/16
last=$(req_times c | awk '{print $NF}')
awk "BEGIN { exit !($last < 0.5) }"
is "concurrency: all 16 requests reached the server within 0.5 s of the first ($last s)" "$?" 0
wall=$(jget "$T/c.json" wall_s)
awk "BEGIN { exit !($wall < 1.6) }"
is "concurrency: one latency (1 s) for all, not two ($wall s)" "$?" 0
is "concurrency: sent = requests the server saw" "$(jget "$T/c.json" sent)" "$(nreq c)"
stop_server

# a 401: the run stops; "sent" is what reached the server, not what was queued
DB=$T/k.db
"$DBTOOL" seed "$DB" 10 2
start_server k --require-key right --latency 0.2
OPENAI_API_KEY=wrong-key-123456 dpo-judge --db "$DB" --model m --base-url "$URL" --concurrency 4 --json \
	>"$T/k.json" 2>/dev/null
is "401: exit 1" "$?" 1
is "401: sent = requests the server saw ($(nreq k))" "$(jget "$T/k.json" sent)" "$(nreq k)"
stop_server

# connection resets that libcurl re-sends on its own are retries too: every
# request the server saw is an answer, a counted retry, or a first send
DB=$T/r.db
"$DBTOOL" seed "$DB" 10 3
start_server r --seed 3 --faults reset:0.25
dpo-judge --db "$DB" --model m --base-url "$URL" --concurrency 4 --max-retries 30 --backoff 10 --json \
	>"$T/r.json" 2>"$T/r.err"
is "resets: all 30 pairs judged" "$?/$(jget "$T/r.json" judged)" 0/30
n=$(nreq r); rt=$(jget "$T/r.json" retries)
is "resets: requests seen ($n) = 60 answers + counted retries ($rt)" "$n" "$((60 + rt))"
is "resets: sent counts each request once" "$(jget "$T/r.json" sent)" 60
stop_server

# a server that is down: stop after a few tries, name the URL, mark nothing failed
DB=$T/d.db
"$DBTOOL" seed "$DB" 20 3
start_server d
stop_server
t0=$($PY -c 'import time; print(time.time())')
dpo-judge --db "$DB" --model m --base-url "http://127.0.0.1:$PORT/v1" --json >"$T/d.json" 2>"$T/d.err"
rc=$?
dt=$($PY -c "import time; print('%.1f' % (time.time() - $t0))")
is "down: exit 1" "$rc" 1
is "down: the message names the URL and why" "$(grep -v '^judged' "$T/d.err")" \
	"dpo-judge: cannot reach http://127.0.0.1:$PORT/v1 (connection refused)"
awk "BEGIN { exit !($dt < 5) }"
is "down: gives up in under 5 s ($dt s)" "$?" 0
is "down: no pair marked failed" "$("$DBTOOL" count "$DB")/$(jget "$T/d.json" failed_pairs)" 0/0
is "down: nothing sent" "$(jget "$T/d.json" sent)" 0
# once the server is up the same command judges everything
start_server d2
dpo-judge --db "$DB" --model m --base-url "$URL" --json >"$T/d2.json" 2>/dev/null
is "down, then up: all 60 pairs judged" "$(jget "$T/d2.json" judged)" 60
stop_server

# TLS that fails (https:// to a plain HTTP server) and a name that does not
# resolve stop the same way
start_server tls
dpo-judge --db "$DB" --model m-tls --base-url "https://127.0.0.1:$PORT/v1" --json >/dev/null 2>"$T/tls.err"
is "TLS failure: exit 1" "$?" 1
like "TLS failure: named" "$(cat "$T/tls.err")" "dpo-judge: cannot reach https://127.0.0.1:$PORT/v1 (TLS failure: "
stop_server
if command -v getent >/dev/null 2>&1 && { timeout 3 getent hosts nonexistent.invalid; test $? -eq 2; }; then
	dpo-judge --db "$DB" --model m-dns --base-url "http://nonexistent.invalid/v1" --timeout 5 --json \
		>/dev/null 2>"$T/dns.err"
	is "DNS failure: exit 1" "$?" 1
	is "DNS failure: named" "$(grep -v '^judged' "$T/dns.err")" \
		"dpo-judge: cannot reach http://nonexistent.invalid/v1 (cannot resolve the host name)"
else
	# the resolver does not answer for nonexistent.invalid at once: skipped
	_tap_result 0 "DNS failure: exit 1 # SKIP no quick resolver"
	_tap_result 0 "DNS failure: named # SKIP no quick resolver"
fi
is "TLS and DNS failures: still no pair marked failed" "$("$DBTOOL" count "$DB")" 60

# a shared 429 pause: 8 requests in flight all get 429 with Retry-After 0.6;
# only the first to come back pays a try (with --max-retries 0 it gives up),
# the other 7 wait out its pause free and resume spread over a window
DB=$T/p.db
"$DBTOOL" seed "$DB" 8 2
start_server p --latency 0.2 --fault-first 429:8 --retry-after 0.6
dpo-judge --db "$DB" --model m --base-url "$URL" --no-swap --concurrency 8 --max-retries 0 --json \
	>"$T/p.json" 2>"$T/p.err"
is "pause: 7 pairs judged, 1 failed (its own retries spent)" \
	"$(jget "$T/p.json" judged)/$(jget "$T/p.json" failed_pairs)" 7/1
$PY - "$T/p.log" <<'PY' >"$T/p.out"
import json, sys
t = [json.loads(l)["t"] for l in open(sys.argv[1])]
first, retry = t[:8], sorted(t[8:])
print(len(retry), "late" if retry[0] - max(first) >= 0.75 else "early",
      "spread" if retry[-1] - retry[0] >= 0.05 else "bunched")
PY
is "pause: the 7 retries wait out Retry-After and resume spread out" "$(cat "$T/p.out")" "7 late spread"
stop_server

dpo-judge --model m --http2 --no-http2 >/dev/null 2>&1
is "--http2 and --no-http2: exit 2" "$?" 2

# two runs of one judge on one store at once split the pairs (claims in the
# store): every pair judged once, each request paid once (#15)
DB=$T/two.db
"$DBTOOL" seed "$DB" 20 2
start_server two --latency 0.3
dpo-judge --db "$DB" --model m --base-url "$URL" --concurrency 2 --json >"$T/two1.json" 2>"$T/two1.err" &
p1=$!
dpo-judge --db "$DB" --model m --base-url "$URL" --concurrency 2 --json >"$T/two2.json" 2>"$T/two2.err" &
p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
is "two runs at once: both exit 0" "$r1 $r2" "0 0"
is "two runs at once: 20 pairs judged between them" "$(( $(jget "$T/two1.json" judged) + $(jget "$T/two2.json" judged) ))" 20
is "two runs at once: 40 requests (20 pairs, both orders), none paid twice" "$(nreq two)" 40
is "two runs at once: no claim left" "$(sqlite3 "$DB" "SELECT count(*) FROM claims" 2>/dev/null || echo 0)" 0
stop_server

done_testing
