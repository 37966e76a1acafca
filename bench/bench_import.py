#!/usr/bin/env python3
"""bench_import.py: the baseline and the driver of bench/bench_import.sh.

  bench_import.py generate N FILE      write N TRL preference pairs to FILE
  bench_import.py baseline FILE DB     import FILE with Python's standard
                                       library (json + sqlite3, hashlib) into
                                       a comparable schema; prints pairs/s
  bench_import.py run CMD...           run CMD (e.g. dpo-db import FILE),
                                       print its wall seconds, CPU seconds
                                       and peak RSS in KiB

The baseline does the work dpo-db import does for a TRL file: parse each
line, check the fields, hash prompt and completions (SHA-256), insert or
reuse prompts / completions / generators / annotators by hash, insert the
comparison unless present, all in one transaction, WAL mode.
"""
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time

# The tables and indexes of dpo's store (store/store.c, schema version 2)
# that an import touches, so that both sides do the same database work.
SCHEMA = """
CREATE TABLE prompts(id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL CHECK (kind IN ('text', 'chat')), content TEXT NOT NULL, source TEXT NOT NULL,
  split TEXT NOT NULL DEFAULT 'train', created_at TEXT NOT NULL);
CREATE INDEX prompts_split ON prompts(split, id);
CREATE INDEX prompts_source ON prompts(source, id);
CREATE TABLE generators(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL,
  fingerprint TEXT NOT NULL DEFAULT '', params TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL,
  UNIQUE (kind, name, fingerprint, params));
CREATE TABLE completions(id INTEGER PRIMARY KEY,
  prompt_id INTEGER NOT NULL REFERENCES prompts(id) ON DELETE CASCADE, hash TEXT NOT NULL,
  text TEXT NOT NULL, generator_id INTEGER NOT NULL REFERENCES generators(id), created_at TEXT NOT NULL,
  UNIQUE (prompt_id, hash));
CREATE INDEX completions_generator ON completions(generator_id);
CREATE TABLE annotators(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL);
CREATE TABLE comparisons(id INTEGER PRIMARY KEY,
  prompt_id INTEGER NOT NULL REFERENCES prompts(id) ON DELETE CASCADE,
  completion_a INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,
  completion_b INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,
  annotator_id INTEGER NOT NULL REFERENCES annotators(id),
  verdict TEXT NOT NULL CHECK (verdict IN ('a', 'b', 'tie', 'both_bad', 'skip')),
  shown_first TEXT, rationale TEXT, confidence REAL, duration_ms INTEGER,
  inconsistent INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
  CHECK (completion_a < completion_b), UNIQUE (annotator_id, completion_a, completion_b));
CREATE INDEX comparisons_pair ON comparisons(prompt_id, completion_a, completion_b);
CREATE INDEX comparisons_completion_b ON comparisons(completion_b);
"""

WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly "
         "judge every answer given to each question about rivers mountains and "
         "stars").split()


def generate(n, path):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            w = [WORDS[(i * 7 + k * 13) % len(WORDS)] for k in range(12)]
            prompt = "Question %d: tell me about %s." % (i, " ".join(w[:6]))
            chosen = "A careful answer %d: %s." % (i, " ".join(w))
            rejected = "A sloppy answer %d: %s." % (i, " ".join(reversed(w)))
            f.write(json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected}) + "\n")


def baseline(path, dbpath):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(dbpath + suffix):
            os.unlink(dbpath + suffix)
    db = sqlite3.connect(dbpath, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    start = time.perf_counter()
    cpu0 = time.process_time()
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    source = os.path.basename(path).split(".")[0]
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT OR IGNORE INTO generators(kind, name, created_at) VALUES ('import', ?, ?)", (source, now))
    gen = db.execute("SELECT id FROM generators WHERE kind = 'import' AND name = ?", (source,)).fetchone()[0]
    db.execute("INSERT OR IGNORE INTO annotators(kind, name, created_at) VALUES ('import', ?, ?)",
               ("import:" + source, now))
    ann = db.execute("SELECT id FROM annotators WHERE name = ?", ("import:" + source,)).fetchone()[0]
    pairs = 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            for k in ("prompt", "chosen", "rejected"):
                if not isinstance(rec.get(k), str):
                    raise SystemExit("%s:%d: field %r must be a string" % (path, lineno, k))
            ph = hashlib.sha256(("text\0" + rec["prompt"]).encode()).hexdigest()
            db.execute("INSERT OR IGNORE INTO prompts(hash, kind, content, source, created_at) "
                       "VALUES (?, 'text', ?, ?, ?)", (ph, rec["prompt"], source, now))
            pid = db.execute("SELECT id FROM prompts WHERE hash = ?", (ph,)).fetchone()[0]
            ids = []
            for k in ("chosen", "rejected"):
                ch = hashlib.sha256(rec[k].encode()).hexdigest()
                db.execute("INSERT OR IGNORE INTO completions(prompt_id, hash, text, generator_id, created_at) "
                           "VALUES (?, ?, ?, ?, ?)", (pid, ch, rec[k], gen, now))
                ids.append(db.execute("SELECT id FROM completions WHERE prompt_id = ? AND hash = ?",
                                      (pid, ch)).fetchone()[0])
            a, b, v = ids[0], ids[1], "a"
            if a > b:
                a, b, v = b, a, "b"
            db.execute("INSERT OR IGNORE INTO comparisons(prompt_id, completion_a, completion_b, annotator_id, "
                       "verdict, created_at) VALUES (?, ?, ?, ?, ?, ?)", (pid, a, b, ann, v, now))
            pairs += 1
    db.execute("COMMIT")
    db.close()
    el = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    print("python: %d pairs in %.3f s (%.3f s CPU): %.0f pairs/s, %.0f pairs/CPU-s"
          % (pairs, el, cpu, pairs / el, pairs / cpu))


def run(cmd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(proc.pid, 0)
    el = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit("%s exited %d" % (" ".join(cmd), code))
    # ru_maxrss is in KiB on Linux
    print("%.6f %.6f %d" % (el, ru.ru_utime + ru.ru_stime, ru.ru_maxrss))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "generate":
        generate(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "baseline":
        baseline(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 2 and sys.argv[1] == "run":
        run(sys.argv[2:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
