#!/bin/sh
# bench_annotate.sh BUILDDIR: next-item latency of dpo-annotate on a store
# with 1,000,000 pairs (100k prompts x 5 completions) against a 1k-pair
# store in the same run. Goal: <= 5 ms.
set -eu
b=$1; shift; exec "$b/bench/bench_annotate" "$@"
