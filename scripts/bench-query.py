#!/usr/bin/env python3
"""`scripts/bench query`: query latency of `evalforge backend` through its HTTP API.

Loads N spans of realistic shape (agent traces: a root, one to three LLM calls with 1-2 KB of
messages, a tool call; 8 services, 6 models, 20k users, 60k sessions, spread over the last 30 days,
3% errors) over OTLP/HTTP protobuf into a fresh backend (ClickHouse when EVALFORGE_CLICKHOUSE_URL is
set, else the local 18.16 server that scripts/clickhouse-server starts; --sqlite for the embedded
SQLite store), then measures through HTTP:

  trace_by_id_p95_ms   GET /api/traces/{id} for random known ids
  list_p95_ms          GET /api/traces with typical filters (model+status, user, service+min cost,
                       tag by duration, time window + model, session), limit 50
  dashboard_p95_ms     GET / (the dashboard page, 30 days by model: what a user waits for)
  export_10k_ms        GET /api/export/spans?max_rows=10000, whole body read

Progress goes to stderr; the last stdout line is one JSON object.
Usage: scripts/bench query [--spans N] [--bin PATH] [--requests N] [--keep DIR] [--database NAME]

--database NAME measures an existing ClickHouse database (one a previous run loaded; the backend
migrates it first) instead of loading a new one: the sample traces, users and sessions are read from
its spans. Its spans were spread over the 30 days before that load, so time windows reach fewer.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

API_KEY = "ef_bench_query_key_0123456789"
MODELS = [("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"),
          ("anthropic", "claude-haiku-4-5"), ("openai", "gpt-4.1"), ("openai", "o4-mini")]
SERVICES = [f"svc-{n}" for n in ("checkout", "support", "search", "billing", "onboarding", "docs", "agent", "mail")]
TAGS = ["prod", "beta", "experiment-a", "mobile", "web"]
WORDS = ("invoice order refund shipping address account password plan upgrade cancel card bank delivery "
         "warehouse tracking discount coupon subscription team seat export report summary").split()


def log(*a):
    print("bench query:", *a, file=sys.stderr, flush=True)


_KV = {}


def kv(key, value):
    """An attribute; memoized (the generator repeats keys and values), which makes loading cheap."""
    k = (key, tuple(value) if isinstance(value, list) else value)
    hit = _KV.get(k)
    if hit is None:
        hit = _KV[k] = _kv(key, value)
    return hit


def _kv(key, value):
    if isinstance(value, bool):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(bool_value=value))
    if isinstance(value, int):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(int_value=value))
    if isinstance(value, float):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(double_value=value))
    if isinstance(value, list):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[common_pb2.AnyValue(string_value=v) for v in value])))
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


class Generator:
    """Deterministic traces; returns (service, spans, trace_id hex) per trace."""

    def __init__(self, seed, now_ns):
        self.r = random.Random(seed)
        self.now = now_ns
        self.sentences = [" ".join(self.r.choice(WORDS) for _ in range(self.r.randint(8, 24))) for _ in range(400)]
        # Message bodies from pools (0.3-2 KB each), so generating spans is not the bottleneck.
        self.inputs = [json.dumps([{"role": "system", "parts": [{"type": "text", "content": self.text(2)}]},
                                   {"role": "user", "parts": [{"type": "text", "content": self.text(self.r.randint(2, 6))}]}]) for _ in range(500)]
        self.outputs = [json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": self.text(self.r.randint(1, 4))}], "finish_reason": "stop"}]) for _ in range(500)]

    def text(self, n):
        return " ".join(self.r.choice(self.sentences) for _ in range(n))

    def trace(self):
        r = self.r
        tid = r.getrandbits(128).to_bytes(16, "big")
        service = r.choice(SERVICES)
        user = f"user-{r.randrange(20000)}"
        session = f"sess-{r.randrange(60000)}"
        tags = [t for t in TAGS if r.random() < 0.3] or ["prod"]
        start = self.now - r.randrange(30 * 86400 * 10**9)
        common = [kv("user.id", user), kv("session.id", session), kv("evalforge.tags", tags)]
        spans = []
        root_id = r.getrandbits(64).to_bytes(8, "big")
        t = start + r.randrange(1, 20) * 10**6
        failed = r.random() < 0.03
        for _ in range(r.choice((1, 1, 1, 2, 2, 3))):
            prov, model = r.choice(MODELS)
            dur = int(r.lognormvariate(0, 0.6) * 900 * 10**6)
            msgs = r.choice(self.inputs)
            out = r.choice(self.outputs)
            sid = r.getrandbits(64).to_bytes(8, "big")
            attrs = common + [kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", prov), kv("gen_ai.request.model", model),
                              kv("gen_ai.usage.input_tokens", r.randint(80, 4000)), kv("gen_ai.usage.output_tokens", r.randint(10, 800)),
                              kv("gen_ai.input.messages", msgs), kv("gen_ai.output.messages", out), kv("gen_ai.request.temperature", 0.3)]
            status = trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="429 rate limited") if failed else trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_OK)
            spans.append(trace_pb2.Span(trace_id=tid, span_id=sid, parent_span_id=root_id, name=f"chat {model}", kind=trace_pb2.Span.SPAN_KIND_CLIENT,
                                        start_time_unix_nano=t, end_time_unix_nano=t + dur, attributes=attrs, status=status))
            if r.random() < 0.5:
                spans.append(trace_pb2.Span(trace_id=tid, span_id=r.getrandbits(64).to_bytes(8, "big"), parent_span_id=root_id, name="execute_tool lookup",
                                            kind=trace_pb2.Span.SPAN_KIND_INTERNAL, start_time_unix_nano=t + dur, end_time_unix_nano=t + dur + r.randrange(2, 80) * 10**6,
                                            attributes=[kv("gen_ai.operation.name", "execute_tool"), kv("gen_ai.tool.name", "lookup")]))
            t += dur + r.randrange(1, 90) * 10**6
        spans.insert(0, trace_pb2.Span(trace_id=tid, span_id=root_id, name="handle_request", kind=trace_pb2.Span.SPAN_KIND_SERVER,
                                       start_time_unix_nano=start, end_time_unix_nano=t + 5 * 10**6, attributes=common + [kv("http.route", "/v1/chat")],
                                       status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR if failed else trace_pb2.Status.STATUS_CODE_OK)))
        return service, spans, tid.hex(), user, session, prov, model


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method, path, body=None, headers=None):
        h = {"Authorization": f"Bearer {API_KEY}", **(headers or {})}
        for attempt in range(3):
            try:
                self.conn.request(method, path, body=body, headers=h)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, data
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def load(port, total_spans, seed):
    """Sends traces until `total_spans` spans are sent, in OTLP requests of ~2,000 spans from two
    threads. Returns samples of (trace id, user, session, model) for the queries."""
    now = time.time_ns()
    samples = []
    sent = [0]
    lock = threading.Lock()
    errors = []

    def worker(wid, quota):
        g = Generator(seed * 100 + wid, now)
        c = Client(port)
        done = 0
        while done < quota and not errors:
            by_service = {}
            n = 0
            while n < 2000 and done + n < quota:
                service, spans, tid, user, session, prov, model = g.trace()
                by_service.setdefault(service, []).extend(spans)
                n += len(spans)
                if g.r.random() < 0.002:
                    with lock:
                        samples.append((tid, user, session, model))
            req = trace_service_pb2.ExportTraceServiceRequest(resource_spans=[
                trace_pb2.ResourceSpans(resource=resource_pb2.Resource(attributes=[kv("service.name", s)]),
                                        scope_spans=[trace_pb2.ScopeSpans(spans=sp)]) for s, sp in by_service.items()])
            body = req.SerializeToString()
            while True:
                status, data = c.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
                if status == 503:
                    time.sleep(0.2)
                    continue
                if status != 200:
                    errors.append(f"ingest {status}: {data[:200]!r}")
                break
            done += n
            with lock:
                sent[0] += n

    threads = [threading.Thread(target=worker, args=(w, total_spans // 2 + (total_spans % 2 if w == 0 else 0))) for w in range(2)]
    start = time.time()
    for t in threads:
        t.start()
    last = 0
    while any(t.is_alive() for t in threads):
        time.sleep(5)
        with lock:
            s = sent[0]
        if s - last >= 50_000 or not any(t.is_alive() for t in threads):
            log(f"loaded {s:,} spans ({s / max(time.time() - start, 1e-9):,.0f}/s)")
            last = s
    for t in threads:
        t.join()
    if errors:
        raise SystemExit("bench query: " + errors[0])
    log(f"loaded {sent[0]:,} spans in {time.time() - start:.0f} s")
    return sent[0], samples


def existing(url, database):
    """Span count and samples of (trace id, user, session, model) of an already loaded database."""
    import urllib.request

    def query(sql):
        with urllib.request.urlopen(urllib.request.Request(url, data=sql.encode())) as r:
            return [line.split("\t") for line in r.read().decode().splitlines()]

    spans = int(query(f"SELECT count() FROM {database}.spans")[0][0])
    rows = query(f"SELECT trace_id, any(user_id), any(session_id), anyIf(model, model != '') FROM {database}.spans GROUP BY trace_id "
                 f"ORDER BY cityHash64(trace_id) LIMIT 600")
    log(f"existing database {database}: {spans:,} spans, {len(rows)} sample traces")
    return spans, [tuple(r) for r in rows]


def timed(c, path, headers=None, expect=200):
    t = time.perf_counter()
    status, data = c.request("GET", path, headers=headers)
    ms = (time.perf_counter() - t) * 1000
    if status != expect:
        raise SystemExit(f"bench query: GET {path} -> {status}: {data[:300]!r}")
    return ms, data


def ui_session(c):
    """Signs in through the web UI's form (its CSRF token and cookie) and returns the session id."""
    import re
    conn = http.client.HTTPConnection(c.conn.host, c.conn.port, timeout=60)
    conn.request("GET", "/login")
    r = conn.getresponse()
    page = r.read().decode()
    login_cookie = re.search(r"evalforge_login=([0-9a-f]{64})", r.getheader("Set-Cookie") or "").group(1)
    token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page).group(1)
    form = urllib.parse.urlencode({"api_key": API_KEY, "csrf_token": token, "next": "/"})
    conn.request("POST", "/login", body=form, headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": "evalforge_login=" + login_cookie})
    r = conn.getresponse()
    r.read()
    cookies = ", ".join(v for k, v in r.getheaders() if k.lower() == "set-cookie")
    m = re.search(r"evalforge_session=([0-9a-f]{64})", cookies)
    if r.status != 303 or not m:
        raise SystemExit(f"bench query: sign-in answered {r.status}")
    conn.close()
    return m.group(1)


def p95(xs):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))], 1)


def main():
    ap = argparse.ArgumentParser()
    ch = os.environ.get("EVALFORGE_CLICKHOUSE_URL", "")
    ap.add_argument("--sqlite", action="store_true", help="measure the embedded SQLite store instead of ClickHouse")
    if not ch and "--sqlite" not in sys.argv:
        # The benchmark is about ClickHouse: start the local 18.16 server (scripts/clickhouse-server).
        out = subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "clickhouse-server"), "start"], stdout=subprocess.PIPE, text=True)
        if out.returncode != 0 or not out.stdout.strip():
            raise SystemExit("bench query: could not start ClickHouse (scripts/clickhouse-server start); pass --sqlite for the embedded store")
        ch = out.stdout.strip().splitlines()[-1]
    ap.add_argument("--spans", type=int, default=1_000_000 if ch else 200_000,
                    help="spans to load (default 1,000,000 on ClickHouse, 200,000 on the embedded SQLite store)")
    ap.add_argument("--bin", default=os.environ.get("EVALFORGE_BIN", ""), help="evalforge binary (default: scripts/build-release)")
    ap.add_argument("--requests", type=int, default=100, help="requests per measured query kind")
    ap.add_argument("--keep", default="", help="data directory to keep (default: a temporary one, removed)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--database", default="", help="measure this existing ClickHouse database instead of loading one")
    a = ap.parse_args()

    binary = a.bin
    if not binary:
        r = subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "build-release")], stdout=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise SystemExit("bench query: release build failed")
        binary = r.stdout.strip().splitlines()[-1]

    data_dir = a.keep or tempfile.mkdtemp(prefix="evalforge-bench-query-")
    os.makedirs(data_dir, exist_ok=True)
    port = free_port()
    args = [binary, "backend", "--port", str(port), "--data-dir", data_dir, "--api-key", API_KEY, "--log-level", "warning"]
    store = "sqlite"
    if ch:
        store = "clickhouse"
        args += ["--clickhouse-url", ch, "--clickhouse-database", a.database or f"evalforge_bench_{os.getpid()}"]
    elif a.database:
        raise SystemExit("bench query: --database needs ClickHouse")
    log(f"store {store}, {a.spans:,} spans, data dir {data_dir}")
    backend_log = open(os.path.join(data_dir, "backend.log"), "wb")
    # EVALFORGE_OPERATOR_PORT rather than --operator-port: older binaries (before/after runs) ignore it.
    proc = subprocess.Popen(args, env=dict(os.environ, EVALFORGE_OPERATOR_PORT="0"), stdout=backend_log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                raise SystemExit("bench query: backend did not start")
            time.sleep(0.1)

        if a.database:
            spans, samples = existing(ch, a.database)
        else:
            spans, samples = load(port, a.spans, a.seed)
        rnd = random.Random(a.seed)
        c = Client(port)
        # Warm-up: one of each, so the first measured request is not a cold start.
        timed(c, f"/api/traces/{samples[0][0]}")
        timed(c, "/api/traces?limit=50")

        trace_ms = [timed(c, f"/api/traces/{rnd.choice(samples)[0]}")[0] for _ in range(a.requests)]
        log(f"trace by id: p50 {statistics.median(trace_ms):.1f} ms, p95 {p95(trace_ms)} ms")

        day = 86400
        now = int(time.time())
        lists = []
        for i in range(a.requests):
            tid, user, session, model = rnd.choice(samples)
            kind = i % 6
            q = {0: {"model": model, "status": "error"},
                 1: {"user_id": user},
                 2: {"service": rnd.choice(SERVICES), "min_cost_usd": "0.01"},
                 3: {"tag": "beta", "sort": "duration_desc"},
                 4: {"from": str(now - rnd.randrange(2, 29) * day), "to": str(now - rnd.randrange(0, 2) * day), "model": model},
                 5: {"session_id": session}}[kind]
            q["limit"] = "50"
            lists.append(timed(c, "/api/traces?" + urllib.parse.urlencode(q))[0])
        log(f"filtered list: p50 {statistics.median(lists):.1f} ms, p95 {p95(lists)} ms")

        cookie = {"Cookie": "evalforge_session=" + ui_session(c)}
        dash = [timed(c, "/?range=30d", headers=cookie)[0] for _ in range(max(10, a.requests // 5))]
        log(f"dashboard page (30 days, by model): p50 {statistics.median(dash):.1f} ms, p95 {p95(dash)} ms")
        dash_api = [timed(c, "/api/metrics?group_by=model&from=" + str(now - 30 * day))[0] for _ in range(max(10, a.requests // 5))]
        log(f"metrics API (30 days, by model): p95 {p95(dash_api)} ms")

        export_ms, body = timed(c, "/api/export/spans?format=jsonl&max_rows=10000")
        lines = body.count(b"\n")
        if lines != min(10000, spans):
            raise SystemExit(f"bench query: export returned {lines} lines")
        log(f"export 10k spans: {export_ms:.0f} ms ({len(body) / 1e6:.1f} MB)")

        print(json.dumps({"bench": "query", "store": store, "spans": spans, "trace_by_id_p95_ms": p95(trace_ms), "list_p95_ms": p95(lists),
                          "dashboard_p95_ms": p95(dash), "dashboard_api_p95_ms": p95(dash_api), "export_10k_ms": round(export_ms, 1)}))
    except BaseException:
        if proc.poll() is not None:
            log(f"backend exited with {proc.returncode}; its log: {backend_log.name}")
            a.keep = a.keep or data_dir
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not a.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
