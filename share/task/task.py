#!/usr/bin/env python3
"""task.py: dpo's built-in verifiable task: reverse five digits.

A prompt is five digits and ">" ("48213>"); the answer is the digits in
reverse order ("31284"). The problem set (all 100,000 strings of five
digits) is shuffled deterministically by --seed and cut into a test part
(the first --test-size problems) and a train part (the rest), so train and
test prompts never overlap. A tiny model learns the task partly in a minute
or two, which leaves room for preference tuning to show.

Commands:
  prompts --split train|test [--n N] [--seed S]
      JSON Lines {"prompt": "A+B="} for `dpo-db import --format prompts`.
  sft [--n N] [--seed S]
      JSON Lines {"prompt", "chosen", "rejected"} of train problems for
      `dpo-train --loss sft --from-jsonl` (chosen is the right answer; the SFT
      loss reads only chosen, rejected is a wrong answer so the rows are
      valid TRL pairs; it is one wrong digit, to keep it cheap).
  judge
      The verifier for `dpo-judge --provider exec`: reads one JSON object
      with prompt, response_a and response_b on stdin and prints A when only
      response_a is right, B when only response_b is, C otherwise.
  check
      The exact-match checker for `dpo-eval --task-command`: reads JSON Lines
      {"prompt", "response"} on stdin and prints one line per input, 1 when
      the response is the right answer and 0 when not.

Only the Python standard library is used.
"""
import json
import random
import re
import sys

PROMPT_RE = re.compile(r"^([0-9]{5})>$")
DIGITS = 5


def problems(seed, test_size):
    allp = ["%0*d" % (DIGITS, i) for i in range(10 ** DIGITS)]
    random.Random(seed).shuffle(allp)
    return allp[:test_size], allp[test_size:]


def answer(prompt):
    """The right answer of a prompt, or None when it is not a task prompt."""
    m = PROMPT_RE.match(prompt)
    if not m:
        return None
    return m.group(1)[::-1]


def correct(prompt, response):
    ans = answer(prompt)
    return ans is not None and isinstance(response, str) and response.strip() == ans


def usage(msg=None):
    if msg:
        print("task.py: " + msg, file=sys.stderr)
    print("usage: task.py prompts --split train|test [--n N] [--seed S] [--test-size T]\n"
          "       task.py sft [--n N] [--seed S] [--test-size T]\n"
          "       task.py judge | check", file=sys.stderr)
    sys.exit(2)


def parse(args):
    opt = {"split": "train", "n": 0, "seed": 1, "test-size": 2000}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--") and "=" in a:
            k, v = a[2:].split("=", 1)
        elif a.startswith("--") and i + 1 < len(args):
            k, v = a[2:], args[i + 1]
            i += 1
        else:
            usage("unexpected argument " + a)
        if k not in opt:
            usage("unknown option --" + k)
        if k == "split":
            if v not in ("train", "test"):
                usage("--split must be train or test")
            opt[k] = v
        else:
            try:
                opt[k] = int(v)
            except ValueError:
                usage("--%s must be an integer, not %r" % (k, v))
            if opt[k] < 0:
                usage("--%s must not be negative" % k)
        i += 1
    return opt


def cmd_prompts(opt):
    test, train = problems(opt["seed"], opt["test-size"])
    rows = test if opt["split"] == "test" else train
    if opt["n"]:
        rows = rows[:opt["n"]]
    out = sys.stdout
    for d in rows:
        out.write(json.dumps({"prompt": d + ">"}) + "\n")


def cmd_sft(opt):
    _, train = problems(opt["seed"], opt["test-size"])
    rng = random.Random(opt["seed"] + 1)
    train = train[:]
    rng.shuffle(train)
    n = opt["n"] or len(train)
    out = sys.stdout
    for i in range(n):
        d = train[i % len(train)]
        # one digit: always wrong, and short so that it costs the trainer little
        wrong = rng.choice("0123456789")
        out.write(json.dumps({"prompt": d + ">", "chosen": d[::-1],
                              "rejected": wrong}) + "\n")


def cmd_judge():
    try:
        d = json.load(sys.stdin)
        p, ra, rb = d["prompt"], d["response_a"], d["response_b"]
    except (ValueError, KeyError, TypeError) as e:
        print("task.py judge: bad input: %s" % e, file=sys.stderr)
        sys.exit(1)
    if answer(p) is None:
        print("task.py judge: not a task prompt: %r" % p, file=sys.stderr)
        sys.exit(1)
    ca, cb = correct(p, ra), correct(p, rb)
    print("A" if ca and not cb else "B" if cb and not ca else "C")


def cmd_check():
    for n, line in enumerate(sys.stdin, 1):
        try:
            d = json.loads(line)
            p, r = d["prompt"], d["response"]
        except (ValueError, KeyError, TypeError) as e:
            print("task.py check: stdin:%d: %s" % (n, e), file=sys.stderr)
            sys.exit(1)
        sys.stdout.write("1\n" if correct(p, r) else "0\n")
        sys.stdout.flush()


def main():
    if len(sys.argv) < 2:
        usage()
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "prompts":
        cmd_prompts(parse(args))
    elif cmd == "sft":
        cmd_sft(parse(args))
    elif cmd == "judge" and not args:
        cmd_judge()
    elif cmd == "check" and not args:
        cmd_check()
    else:
        usage("unknown command " + cmd)


if __name__ == "__main__":
    main()
