#!/bin/sh
# demo.sh: the main job, run by `./setup.sh demo`. Until the end-to-end demo
# exists it imports the example preference dataset shipped in share/ into a
# fresh database and prints its statistics.
set -eu
build=${1:?usage: demo.sh BUILDDIR}
share=$(cd "$(dirname "$0")" && pwd)
db=${DPO_DB:-$build/demo.db}
rm -f "$db" "$db-wal" "$db-shm"
"$build/dpo-db" --db "$db" init
"$build/dpo-db" --db "$db" import "$share/examples/preferences.jsonl" --source example
"$build/dpo-db" --db "$db" stats
echo "demo database: $db"
