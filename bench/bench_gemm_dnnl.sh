#!/bin/sh
# bench_gemm_dnnl.sh BUILDDIR: our bf16 GEMM vs oneDNN's bf16 matmul and
# float32 sgemm on the GEMMs of a GPT-2-124M training step, 2 threads, same
# run (bench/bench_gemm_dnnl.c). Needs a build configured --with-dnnl.
b=${1:-.}
[ $# -gt 0 ] && shift
if [ ! -x "$b/bench/bench_gemm_dnnl" ]; then
	echo "bench_gemm_dnnl: skipped (configure --with-dnnl, with libdnnl-dev installed, to compare with oneDNN)"
	exit 0
fi
exec "$b/bench/bench_gemm_dnnl" --threads 2 "$@"
