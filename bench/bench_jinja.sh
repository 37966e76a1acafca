#!/bin/sh
# bench_jinja.sh BUILDDIR: rendering 100k conversations with the Qwen3 chat
# template against tokenizing them (see bench/bench_jinja.c); skips when
# ../shared is absent.
b=${1:-.}
: "${DPO_SHARED:=$(cd "$(dirname "$0")/../.." && pwd)/shared}"
export DPO_SHARED
exec "$b/bench/bench_jinja"
