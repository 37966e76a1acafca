#!/bin/sh
# bench_tokenizer.sh BUILDDIR: run the tokenizer benchmark (see
# bench/bench_tokenizer.c); skips when ../shared is absent.
b=${1:-.}
: "${DPO_SHARED:=$(cd "$(dirname "$0")/../.." && pwd)/shared}"
export DPO_SHARED
exec "$b/bench/bench_tokenizer"
