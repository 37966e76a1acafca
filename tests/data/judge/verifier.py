#!/usr/bin/env python3
"""A rule-based verifier for dpo-judge's exec provider tests. It reads the
pair as JSON on stdin and checks the fields dpo-judge promises. Modes
(argv[1]): longer (print A, B or C: the longer response wins), json (the
same as {"verdict": ..., "rationale": ...}), fail (exit 3), garbage (print
something that is not a verdict)."""
import json
import sys

mode = sys.argv[1] if len(sys.argv) > 1 else "longer"
d = json.load(sys.stdin)
for k in ("prompt", "response_a", "response_b", "prompt_id", "completion_a", "completion_b"):
    if k not in d:
        print("missing field " + k, file=sys.stderr)
        sys.exit(4)
a, b = len(d["response_a"]), len(d["response_b"])
v = "A" if a > b else "B" if b > a else "C"
if mode == "longer":
    print(v)
elif mode == "json":
    print(json.dumps({"verdict": v, "rationale": "lengths %d and %d" % (a, b)}))
elif mode == "fail":
    print("verifier broke on purpose", file=sys.stderr)
    sys.exit(3)
else:
    print("maybe")
