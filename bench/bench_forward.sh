#!/bin/sh
# bench_forward.sh BUILDDIR: decode and forward speed of the model engine on
# a `dpo-model init` GPT-2-124M-shaped model (see bench/bench_forward.c).
b=${1:-.}
[ $# -gt 0 ] && shift
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
export top_srcdir
exec "$b/bench/bench_forward" "$top_srcdir/tests/data/model/gpt2-124m.json" "$@"
