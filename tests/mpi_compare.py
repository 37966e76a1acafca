#!/usr/bin/env python3
"""mpi_compare.py: compare two dpo-train runs within a float tolerance.

  mpi_compare.py log REF.jsonl OTHER.jsonl [TOL]
      every line of OTHER (--log-json: a step's metrics or an evaluation's)
      has a line of the same step and kind in REF, with the same fields, each
      number equal within TOL relative (default 1e-5; tokens_per_s ignored);
      and OTHER has every step of REF
  mpi_compare.py weights REF.safetensors OTHER.safetensors [TOL]
      the same tensors (names, F32 shapes), equal within TOL absolute
      (default 1e-5)

Summed gradients add in another order over MPI ranks than in one process,
so equality is up to rounding. Prints what differs most; exits 0 when
within the tolerance, 1 otherwise."""
import json
import struct
import sys


def read_log(path):
    out = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            j = json.loads(line)
            kind = "eval" if any(k.startswith("eval_") for k in j) else "train"
            out[(j["step"], kind)] = j
    return out


def cmp_log(ref, other, tol):
    a, b = read_log(ref), read_log(other)
    if set(a) != set(b):
        print("steps differ: only in %s: %s; only in %s: %s" %
              (ref, sorted(set(a) - set(b)), other, sorted(set(b) - set(a))))
        return 1
    worst, where = 0.0, None
    for k in sorted(b):
        if set(a[k]) != set(b[k]):
            print("step %s (%s): fields differ" % k)
            return 1
        for f, v in b[k].items():
            if f == "tokens_per_s":
                continue
            d = abs(v - a[k][f]) / max(1.0, abs(a[k][f]))
            if d > worst:
                worst, where = d, "step %d %s %s: %r vs %r" % (k[0], k[1], f, a[k][f], v)
    print("%d lines; largest relative difference %.3g (%s)" % (len(b), worst, where))
    return 0 if worst <= tol else 1


def read_st(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    hdr = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise SystemExit("%s: %s is %s, expected F32" % (path, name, t["dtype"]))
        lo, hi = t["data_offsets"]
        out[name] = (tuple(t["shape"]), struct.unpack("<%df" % ((hi - lo) // 4), data[base + lo:base + hi]))
    return out


def cmp_weights(ref, other, tol):
    a, b = read_st(ref), read_st(other)
    if set(a) != set(b):
        print("tensors differ: %s" % sorted(set(a) ^ set(b)))
        return 1
    worst, where = 0.0, None
    for k in sorted(a):
        if a[k][0] != b[k][0]:
            print("%s: shape %s vs %s" % (k, a[k][0], b[k][0]))
            return 1
        for i, (x, y) in enumerate(zip(a[k][1], b[k][1])):
            if abs(x - y) > worst:
                worst, where = abs(x - y), "%s[%d]: %r vs %r" % (k, i, x, y)
    print("%d tensors; largest difference %.3g (%s)" % (len(a), worst, where))
    return 0 if worst <= tol else 1


def main():
    if len(sys.argv) not in (4, 5) or sys.argv[1] not in ("log", "weights"):
        sys.stderr.write(__doc__)
        return 2
    tol = float(sys.argv[4]) if len(sys.argv) == 5 else 1e-5
    f = cmp_log if sys.argv[1] == "log" else cmp_weights
    return f(sys.argv[2], sys.argv[3], tol)


if __name__ == "__main__":
    sys.exit(main())
