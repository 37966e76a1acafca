#!/usr/bin/env python3
"""A loopback fake of the OpenAI Batch API (/v1/files, /v1/batches, file
content) and Anthropic Message Batches (/v1/messages/batches, results) for
dpo-judge --batch's tests. Standard library only; binds 127.0.0.1.

It judges each request of a batch as tests/fake_llm_server.py does with
--rule longer (the texts between the request's boundary markers; the
longer response wins) and answers in the provider's batch result format.
It answers single requests (/v1/chat/completions, /v1/messages) the
same way. A batch stays in progress for --polls looks at it (and while the file
--hold names exists), then ends with its results.

Faults: --expire-every K makes every K-th request of a batch expire;
--error-every K makes every K-th fail (OpenAI: a 400 in the error file;
Anthropic: errored); --malformed-line N replaces line N of the results
(OpenAI: the output file) with text that is not JSON.

Every request is appended to --log as one JSON line: method, path,
headers, body (parsed JSON; for an upload its form fields, the file as a
list of parsed lines). The port is written to --port-file once
listening."""
import argparse
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOCK = threading.Lock()
LOGF = None
MARK = re.compile(r"<<<BEGIN ([0-9a-f]+)>>>\n(.*?)\n<<<END \1>>>", re.S)
FILES = {}    # file id -> bytes
BATCHES = {}  # batch id -> dict
COUNT = {"file": 0, "batch": 0}


def verdict(content):
    texts = [m.group(2) for m in MARK.finditer(content)]
    if len(texts) < 3:
        return "C"
    a, b = texts[1], texts[2]
    return "A" if len(a) > len(b) else "B" if len(b) > len(a) else "C"


def user_text(body):
    msgs = body.get("messages") or []
    c = msgs[-1].get("content", "") if msgs else ""
    return c if isinstance(c, str) else ""


def answer_openai(body):
    content = user_text(body)
    text = "I compared both.\n[[%s]]" % verdict(content)
    itok, otok = len(content) // 4, len(text) // 4
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": itok, "completion_tokens": otok, "total_tokens": itok + otok}}


def answer_anthropic(params):
    content = user_text(params)
    text = "I compared both.\n[[%s]]" % verdict(content)
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": params.get("model"),
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "usage": {"input_tokens": len(content) // 4, "output_tokens": len(text) // 4}}


def fate(i):
    """What happens to the i-th request (from 1) of a batch."""
    if ARGS.expire_every and i % ARGS.expire_every == 0:
        return "expired"
    if ARGS.error_every and i % ARGS.error_every == 0:
        return "error"
    return "ok"


def finish_openai(b):
    out, err = [], []
    for i, line in enumerate(b["lines"], 1):
        cid = line.get("custom_id")
        f = fate(i)
        if f == "expired":
            err.append({"id": "batch_req_%d" % i, "custom_id": cid, "response": None,
                        "error": {"code": "batch_expired",
                                  "message": "not executed before the completion window ended"}})
        elif f == "error":
            err.append({"id": "batch_req_%d" % i, "custom_id": cid,
                        "response": {"status_code": 400, "request_id": "r%d" % i,
                                     "body": {"error": {"message": "bad request %d" % i,
                                                        "type": "invalid_request_error"}}},
                        "error": None})
        else:
            out.append({"id": "batch_req_%d" % i, "custom_id": cid,
                        "response": {"status_code": 200, "request_id": "r%d" % i,
                                     "body": answer_openai(line.get("body") or {})},
                        "error": None})
    lines = [json.dumps(x) for x in out]
    if ARGS.malformed_line and ARGS.malformed_line <= len(lines):
        lines[ARGS.malformed_line - 1] = "{this is not json"
    oid, eid = "file-out-" + b["id"], "file-err-" + b["id"]
    FILES[oid] = ("\n".join(lines) + "\n").encode()
    b["output_file_id"] = oid
    if err:
        FILES[eid] = ("\n".join(json.dumps(x) for x in err) + "\n").encode()
        b["error_file_id"] = eid
    b["status"] = "completed"
    b["request_counts"] = {"total": len(b["lines"]), "completed": len(out), "failed": len(err)}


def finish_anthropic(b, port):
    lines, k = [], {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    for i, r in enumerate(b["requests"], 1):
        cid = r.get("custom_id")
        f = fate(i)
        if f == "expired":
            res = {"type": "expired"}
            k["expired"] += 1
        elif f == "error":
            res = {"type": "errored", "error": {"type": "error", "error": {
                "type": "invalid_request_error", "message": "bad request %d" % i}}}
            k["errored"] += 1
        else:
            res = {"type": "succeeded", "message": answer_anthropic(r.get("params") or {})}
            k["succeeded"] += 1
        lines.append(json.dumps({"custom_id": cid, "result": res}))
    if ARGS.malformed_line and ARGS.malformed_line <= len(lines):
        lines[ARGS.malformed_line - 1] = "{this is not json"
    b["results"] = ("\n".join(lines) + "\n").encode()
    b["processing_status"] = "ended"
    b["request_counts"] = k
    b["results_url"] = "http://127.0.0.1:%d/v1/messages/batches/%s/results" % (port, b["id"])


def multipart(ctype, raw):
    """The fields of a multipart/form-data body: name -> bytes."""
    m = re.search(r'boundary="?([^";]+)"?', ctype or "")
    if not m:
        return {}
    out = {}
    for part in raw.split(b"--" + m.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        nm = re.search(rb'name="([^"]*)"', head)
        if nm:
            out[nm.group(1).decode()] = data[:-2] if data.endswith(b"\r\n") else data
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj=None, raw=None, ctype="application/json"):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log(self, body):
        if LOGF:
            rec = {"method": self.command, "path": self.path,
                   "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
            with LOCK:
                LOGF.write(json.dumps(rec) + "\n")
                LOGF.flush()

    def authorized(self):
        if ARGS.require_key is None:
            return True
        key = self.headers.get("x-api-key") if "/messages/" in self.path else \
            (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if key == ARGS.require_key:
            return True
        self.reply(401, {"error": {"type": "authentication_error", "message": "bad key"}})
        return False

    def held(self, b):
        b["looks"] += 1
        return b["looks"] <= ARGS.polls or (ARGS.hold and os.path.exists(ARGS.hold))

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if self.path == "/v1/files":
            fields = multipart(self.headers.get("Content-Type"), raw)
            data = fields.get("file", b"")
            try:
                lines = [json.loads(x) for x in data.decode().splitlines() if x.strip()]
            except ValueError:
                lines = None
            self.log({"purpose": fields.get("purpose", b"").decode(), "file": lines})
            if not self.authorized():
                return
            if lines is None or fields.get("purpose") != b"batch":
                self.reply(400, {"error": {"message": "a batch file of JSON lines is needed"}})
                return
            with LOCK:
                COUNT["file"] += 1
                fid = "file-in-%d" % COUNT["file"]
            FILES[fid] = data
            self.reply(200, {"id": fid, "object": "file", "purpose": "batch", "bytes": len(data)})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.log(body)
        if not self.authorized():
            return
        if self.path in ("/v1/chat/completions", "/v1/messages"):
            # the normal path too, so that its answers share the request cache
            ans = answer_openai if self.path == "/v1/chat/completions" else answer_anthropic
            self.reply(200, ans(body or {}))
            return
        if self.path == "/v1/batches":
            fid = (body or {}).get("input_file_id")
            if fid not in FILES or body.get("endpoint") != "/v1/chat/completions" \
                    or body.get("completion_window") != "24h":
                self.reply(400, {"error": {"message": "bad batch request"}})
                return
            lines = [json.loads(x) for x in FILES[fid].decode().splitlines() if x.strip()]
            with LOCK:
                COUNT["batch"] += 1
                bid = "batch_%d" % COUNT["batch"]
            b = {"id": bid, "object": "batch", "endpoint": "/v1/chat/completions", "input_file_id": fid,
                 "completion_window": "24h", "status": "validating", "output_file_id": None,
                 "error_file_id": None, "lines": lines, "looks": 0,
                 "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
            BATCHES[bid] = b
            self.reply(200, {k: v for k, v in b.items() if k not in ("lines", "looks")})
            return
        if self.path == "/v1/messages/batches":
            if not self.headers.get("anthropic-version"):
                self.reply(400, {"error": {"message": "anthropic-version header is required"}})
                return
            reqs = (body or {}).get("requests")
            if not isinstance(reqs, list) or not reqs:
                self.reply(400, {"error": {"message": "requests must be a non-empty list"}})
                return
            with LOCK:
                COUNT["batch"] += 1
                bid = "msgbatch_%d" % COUNT["batch"]
            b = {"id": bid, "type": "message_batch", "processing_status": "in_progress",
                 "request_counts": {"processing": len(reqs), "succeeded": 0, "errored": 0,
                                    "canceled": 0, "expired": 0},
                 "results_url": None, "requests": reqs, "looks": 0}
            BATCHES[bid] = b
            self.reply(200, {k: v for k, v in b.items() if k not in ("requests", "looks", "results")})
            return
        self.reply(404, {"error": {"message": "no such endpoint " + self.path}})

    def do_GET(self):
        self.log(None)
        if not self.authorized():
            return
        m = re.fullmatch(r"/v1/batches/([^/]+)", self.path)
        if m and m.group(1) in BATCHES:
            b = BATCHES[m.group(1)]
            with LOCK:
                if b["status"] != "completed":
                    if self.held(b):
                        b["status"] = "in_progress"
                        done = min(len(b["lines"]), b["looks"])
                        b["request_counts"] = {"total": len(b["lines"]), "completed": done, "failed": 0}
                    else:
                        finish_openai(b)
            self.reply(200, {k: v for k, v in b.items() if k not in ("lines", "looks")})
            return
        m = re.fullmatch(r"/v1/files/([^/]+)/content", self.path)
        if m and m.group(1) in FILES:
            self.reply(200, raw=FILES[m.group(1)], ctype="application/octet-stream")
            return
        m = re.fullmatch(r"/v1/messages/batches/([^/]+)(/results)?", self.path)
        if m and m.group(1) in BATCHES:
            b = BATCHES[m.group(1)]
            if m.group(2):
                if "results" not in b:
                    self.reply(404, {"error": {"message": "not ended"}})
                else:
                    self.reply(200, raw=b["results"], ctype="application/binary")
                return
            with LOCK:
                if b["processing_status"] != "ended" and not self.held(b):
                    finish_anthropic(b, self.server.server_address[1])
            self.reply(200, {k: v for k, v in b.items() if k not in ("requests", "looks", "results")})
            return
        self.reply(404, {"error": {"message": "no such object " + self.path}})


class Server(ThreadingHTTPServer):
    daemon_threads = True


def main():
    global ARGS, LOGF
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    ap.add_argument("--polls", type=int, default=2)
    ap.add_argument("--hold")
    ap.add_argument("--expire-every", type=int, default=0)
    ap.add_argument("--error-every", type=int, default=0)
    ap.add_argument("--malformed-line", type=int, default=0)
    ap.add_argument("--require-key")
    ARGS = ap.parse_args()
    if ARGS.log:
        LOGF = open(ARGS.log, "a")
    srv = Server(("127.0.0.1", 0), Handler)
    with open(ARGS.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(ARGS.port_file + ".tmp", ARGS.port_file)
    try:
        srv.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
