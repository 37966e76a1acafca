# cli_judge_common.sh: helpers for dpo-judge's shell tests (sourced after tap.sh).
#   start_server NAME [fake_llm_server.py options]   starts a fake server,
#       sets $URL (OpenAI base) and $AURL
#       (Anthropic base) and the log file $T/NAME.log
#   stop_server                                         stops the last one
#   nreq NAME                                          requests logged so far
# the system interpreter when there is one (a pyenv shim costs seconds per start)
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3
elif command -v python3 >/dev/null 2>&1; then PY=python3
else skip_all "python3 is needed for the fake LLM server"; fi
DBTOOL="$top_builddir/tests/test_judge_dbtool"
[ -x "$DBTOOL" ] || skip_all "tests/test_judge_dbtool is not built"
unset OPENAI_API_KEY ANTHROPIC_API_KEY OPENAI_BASE_URL ANTHROPIC_BASE_URL
SERVER_PID=

start_server() {
	_name=$1; shift
	rm -f "$T/$_name.port"
	$PY "$top_srcdir/tests/fake_llm_server.py" --port-file "$T/$_name.port" \
		--log "$T/$_name.log" "$@" &
	SERVER_PID=$!
	_i=0
	while [ ! -s "$T/$_name.port" ] && [ $_i -lt 100 ]; do sleep 0.05; _i=$((_i + 1)); done
	[ -s "$T/$_name.port" ] || { echo "Bail out! the fake server did not start"; exit 1; }
	PORT=$(cat "$T/$_name.port")
	URL="http://127.0.0.1:$PORT/v1"
	AURL="http://127.0.0.1:$PORT"
	touch "$T/$_name.log"
}

stop_server() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
	fi
	SERVER_PID=
}

nreq() {
	wc -l <"$T/$1.log" | tr -d ' '
}

# jget FILE KEY: a scalar member of dpo-judge's one-line JSON summary in FILE
jget() {
	sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1" | head -1
}

trap 'stop_server; rm -rf "$T"' EXIT
