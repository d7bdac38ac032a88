"""The loopback cluster (scripts/cluster) under SDK load with process faults, shared by the CI fault
test (tests/python/test_cluster_faults.py) and its long version (scripts/bench-cluster.py).

What it provides:
  - Cluster: `scripts/cluster up|down` in one folder, the pids of its processes (from the script's pid
    files), kill -9 of one process, CPU seconds per process (sampled, summed over restarts).
  - Tap: a recording pass-through in front of a collector. `evalforge load` (the SDK) sends to the
    tap, the tap forwards each request unchanged and relays the collector's answer; the bodies the
    collector answered 2xx (with no rejected spans) are exactly what the SDK was acknowledged, so
    their span ids are the expected stored set and the bodies can be replayed into a single node.
  - single_node(): one backend and one collector on fresh folders fed the recorded bodies, for the
    "same answers as one node" comparison; compare_api() compares trace list, trace detail and
    metrics between two backends field by field.
"""
import contextlib
import gzip
import http.client as httpclient
import http.server as httpserver
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROJECT_KEY = "cluster-project-key"  # scripts/cluster's default project key
BACKEND_PORTS = (3101, 3102)
COLLECTOR_PORTS = (4411, 4412, 4413)
CLICKHOUSE = {"s1r1": 18211, "s1r2": 18221, "s2r1": 18231, "s2r2": 18241}


def log(*a):
    print("cluster-faults:", *a, file=sys.stderr, flush=True)


def http(method, url, body=None, headers=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, b""


def api_get(base, path, key=PROJECT_KEY, timeout=60):
    status, body = http("GET", base + path, headers={"Authorization": "Bearer " + key}, timeout=timeout)
    if status != 200:
        raise AssertionError(f"GET {base}{path}: HTTP {status}: {body[:300]!r}")
    return json.loads(body)


def wait_http(url, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if http("GET", url, timeout=2)[0] == 200:
            return True
        time.sleep(0.2)
    return False


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def clickhouse(port, sql, timeout=120):
    status, body = http("POST", f"http://127.0.0.1:{port}/", sql.encode(), timeout=timeout)
    if status != 200:
        raise AssertionError(f"ClickHouse {port}: HTTP {status}: {body[:300]!r} for {sql[:200]}")
    return body.decode()


class Cluster:
    """scripts/cluster in `root` with `binary`; processes are named as in its folder layout."""

    PROCESSES = ["zookeeper", "clickhouse-s1r1", "clickhouse-s1r2", "clickhouse-s2r1", "clickhouse-s2r2",
                 "backend-1", "backend-2", "collector-1", "collector-2", "collector-3"]

    def __init__(self, root, binary, env=None):
        self.root, self.binary = root, binary
        self.env = env or {}  # extra environment for the processes scripts/cluster starts
        self.cpu = {}  # name -> {pid: (first, last)}
        self._sampling = None

    def script(self, *args, collector_args="", timeout=600):
        env = dict(os.environ, **self.env, EVALFORGE_CLUSTER_DIR=self.root, EVALFORGE_BIN=self.binary, EVALFORGE_CLUSTER_COLLECTOR_ARGS=collector_args)
        return subprocess.run([os.path.join(ROOT, "scripts", "cluster"), *args], env=env, cwd=ROOT, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def up(self, collector_args=""):
        r = self.script("up", collector_args=collector_args)
        if r.returncode != 0:
            raise RuntimeError(f"scripts/cluster up failed: {r.stderr[-2000:]}")
        return r.stdout

    def down(self):
        self.script("down")

    def pid(self, name):
        try:
            with open(os.path.join(self.root, name, "pid")) as f:
                pid = int(f.read().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def kill9(self, name):
        pid = self.pid(name)
        if pid is None:
            raise AssertionError(f"{name} is not running")
        self.sample_cpu()  # its CPU up to now counts
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 5)
        log(f"kill -9 {name} (pid {pid})")

    def stop(self, name):
        """SIGTERM and wait (graceful: a collector flushes, then exits)."""
        pid = self.pid(name)
        if pid is None:
            return
        self.sample_cpu()
        os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, 60):
            os.kill(pid, signal.SIGKILL)

    # CPU accounting: utime+stime of every incarnation of every process, sampled every second.
    def sample_cpu(self):
        for name in self.PROCESSES:
            pid = self.pid(name)
            if pid is None:
                continue
            c = cpu_seconds(pid)
            if c is None:
                continue
            per = self.cpu.setdefault(name, {})
            first, _ = per.get(pid, (c, c))
            per[pid] = (first, c)

    def cpu_window(self):
        """Context manager: CPU seconds per process used inside the block."""
        cluster = self

        class Window:
            def __enter__(self):
                cluster.sample_cpu()
                self.start = {n: dict(p) for n, p in cluster.cpu.items()}
                self.stop = threading.Event()
                self.thread = threading.Thread(target=self.loop, daemon=True)
                self.thread.start()
                return self

            def loop(self):
                while not self.stop.wait(1.0):
                    cluster.sample_cpu()

            def __exit__(self, *exc):
                self.stop.set()
                self.thread.join(5)
                cluster.sample_cpu()
                self.seconds = {}
                for name, per in cluster.cpu.items():
                    before = self.start.get(name, {})
                    # An incarnation started inside the window (a restart) counts from zero.
                    self.seconds[name] = sum(max(0.0, last - before.get(pid, (0.0, 0.0))[1]) for pid, (_, last) in per.items())
                return False

        return Window()

    def dead_letters(self):
        """Every collector's dead-letter entries (`evalforge inspect --dead-letter`), as
        "collector-N: reason" strings: what was set aside instead of forwarded."""
        out = []
        for i in range(1, len(COLLECTOR_PORTS) + 1):
            path = os.path.join(self.root, f"collector-{i}", "wal", "dead-letter.log")
            if not os.path.exists(path):
                continue
            r = subprocess.run([self.binary, "inspect", "--dead-letter", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out += [f"collector-{i}: " + json.loads(l).get("reason", l) for l in r.stdout.splitlines() if l.startswith("{")]
        return out

    def collectors_drained(self):
        """True when every collector's WAL queue and pending traces are empty (operator /healthz)."""
        for p in COLLECTOR_PORTS:
            s, b = http("GET", f"http://127.0.0.1:{p + 100}/healthz", timeout=5)
            if s != 200:
                return False
            st = json.loads(b)
            if st.get("queueDepthRecords", 1) != 0 or st.get("pendingTraces", 1) != 0:
                return False
        return True

    def wait_drained(self, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.collectors_drained():
                return True
            time.sleep(1)
        return False


class Tap:
    """A pass-through in front of one collector that records what the collector acknowledged.

    Each POST is forwarded unchanged (body and the headers that matter); the collector's status and
    body are relayed. A 2xx whose ExportTraceServiceResponse rejects no span and that reached the SDK
    (it may have stopped waiting) is recorded (the body as received, appended to `path`): those are the
    spans acknowledged to the SDK. A transport error
    answers 503, which the SDK retries (the collector may be down: that is the point)."""

    def __init__(self, upstream_port, path):
        self.upstream_port, self.path = upstream_port, path
        self.lock = threading.Lock()
        self.out = open(path, "wb")
        self.acked_requests = 0
        self.failed_requests = 0
        self.partial = 0
        self.unanswered = 0  # 2xx the SDK no longer waited for (not acknowledged to it)
        tap = self

        class Handler(httpserver.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "content-encoding", "authorization")}
                try:
                    conn = httpclient.HTTPConnection("127.0.0.1", tap.upstream_port, timeout=60)
                    conn.request("POST", self.path, body=body, headers=headers)
                    r = conn.getresponse()
                    answer, status, ctype = r.read(), r.status, r.getheader("Content-Type", "application/x-protobuf")
                    conn.close()
                except (OSError, httpclient.HTTPException):
                    with tap.lock:
                        tap.failed_requests += 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    self.wfile.flush()
                except OSError:
                    # The SDK gave up waiting (its export timeout) and will send the spans again:
                    # this answer acknowledged nothing to it. (A write into a connection the SDK
                    # has just closed can still succeed, so a span may be recorded twice: once
                    # here, once when its re-sent request is acknowledged.)
                    with tap.lock:
                        tap.unanswered += 1
                    self.close_connection = True
                    return
                if 200 <= status < 300:
                    rejected = tap.rejected(answer, ctype)
                    with tap.lock:
                        if rejected:
                            tap.partial += 1  # not recorded: which spans were refused is unknown
                        else:
                            tap.acked_requests += 1
                            enc = 1 if headers.get("Content-Encoding", headers.get("content-encoding", "")) == "gzip" else 0
                            tap.out.write(struct.pack("<BI", enc, len(body)) + body)
                            tap.out.flush()

            def log_message(self, *args):
                pass

        self.server = httpserver.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def rejected(answer, ctype):
        if not answer:
            return 0
        try:
            if "json" in ctype:
                return int(json.loads(answer).get("partialSuccess", {}).get("rejectedSpans", 0))
            from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
            r = trace_service_pb2.ExportTraceServiceResponse()
            r.ParseFromString(answer)
            return r.partial_success.rejected_spans
        except Exception:
            return 0

    def close(self):
        self.server.shutdown()
        with self.lock:
            self.out.close()


def recorded_bodies(path):
    """(gzip flag, body) of every acknowledged request a Tap recorded in `path`."""
    with open(path, "rb") as f:
        while True:
            head = f.read(5)
            if len(head) < 5:
                return
            enc, n = struct.unpack("<BI", head)
            yield enc, f.read(n)


def span_keys(paths):
    """The (trace id hex, span id hex) of every span in the recorded bodies, with multiplicity."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    keys = []
    for path in paths:
        for enc, body in recorded_bodies(path):
            req = trace_service_pb2.ExportTraceServiceRequest()
            req.ParseFromString(gzip.decompress(body) if enc else body)
            for rs in req.resource_spans:
                for ss in rs.scope_spans:
                    for sp in ss.spans:
                        keys.append((sp.trace_id.hex(), sp.span_id.hex()))
    return keys


def replay(paths, collector_url, key=PROJECT_KEY):
    """POSTs every recorded body to `collector_url`/v1/traces (as the SDK sent it), retrying 429/503."""
    n = 0
    for path in paths:
        for enc, body in recorded_bodies(path):
            headers = {"Content-Type": "application/x-protobuf", "Authorization": "Bearer " + key}
            if enc:
                headers["Content-Encoding"] = "gzip"
            for attempt in range(120):
                status, answer = http("POST", collector_url + "/v1/traces", body, headers, timeout=60)
                if 200 <= status < 300:
                    break
                if status not in (0, 429, 502, 503, 504):
                    raise AssertionError(f"replay: HTTP {status}: {answer[:300]!r}")
                time.sleep(0.5)
            else:
                raise AssertionError("replay: the single-node collector did not accept a body in 60 s")
            n += 1
    return n


def stored_span_counts(services, port=CLICKHOUSE["s1r1"]):
    """(trace id, span id) -> count of stored rows, read through the Distributed table `evalforge.spans`
    (every shard; no FINAL, so a duplicate row not yet merged away is counted)."""
    names = ",".join("'" + s.replace("'", "") + "'" for s in services)
    out = clickhouse(port, f"SELECT lower(trace_id), lower(span_id), count() FROM evalforge.spans WHERE service IN ({names}) "
                           "GROUP BY trace_id, span_id FORMAT TabSeparated")
    counts = {}
    for line in out.splitlines():
        t, s, c = line.split("\t")
        counts[(t, s)] = int(c)
    return counts


def wait_gone(pid, seconds):
    """True once process `pid` no longer exists (polled every 50 ms), False after `seconds`."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        time.sleep(0.05)
    return False


def wait_stored(acknowledged, services, seconds):
    """Polls `stored_span_counts` until every acknowledged (trace id, span id) is stored or `seconds`
    pass; returns (counts, missing)."""
    deadline = time.time() + seconds
    while True:
        stored = stored_span_counts(services)
        missing = acknowledged - stored.keys()
        if not missing or time.time() > deadline:
            return stored, missing
        time.sleep(2)


def load(binary, collector_url, rate, seconds, service, key=PROJECT_KEY):
    """Starts `evalforge load` (the SDK) against `collector_url`; returns the Popen (stdout: its JSON)."""
    return subprocess.Popen([binary, "load", "--collector-url", collector_url, "--rate", str(rate), "--duration", str(seconds),
                             "--service", service, "--api-key", key],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def load_result(proc, timeout=600):
    out, _ = proc.communicate(timeout=timeout)
    lines = [l for l in out.strip().splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"evalforge load exited {proc.returncode}: {out[-500:]}")
    return json.loads(lines[-1])


@contextlib.contextmanager
def single_node(binary, key=PROJECT_KEY, clickhouse_url=None):
    """One backend (SQLite, or its own database on `clickhouse_url`) and one collector in key mode,
    on fresh folders and free ports; yields (backend url, collector url, operator url)."""
    import evalforge_harness as h
    tmp = tempfile.mkdtemp(prefix="evalforge-single-node-")
    bport, cport, coport = h.free_port(), h.free_port(), h.free_port()
    env = dict(os.environ, EVALFORGE_OPERATOR_PORT="0")
    args = [binary, "backend", "--host", "127.0.0.1", "--port", str(bport), "--data-dir", tmp + "/backend", "--api-key", key, "--log-level", "warning"]
    if clickhouse_url:
        args += ["--clickhouse-url", clickhouse_url, "--clickhouse-database", f"single_{random.getrandbits(32):x}"]
    procs = [subprocess.Popen(args, env=env, stdout=open(tmp + "/backend.log", "w"), stderr=subprocess.STDOUT)]
    try:
        if not wait_http(f"http://127.0.0.1:{bport}/healthz", 120):
            raise AssertionError(f"single-node backend did not start ({tmp}/backend.log)")
        procs.append(subprocess.Popen([binary, "collector", "--port", str(cport), "--operator-port", str(coport), "--backend-url", f"http://127.0.0.1:{bport}",
                                       "--queue-dir", tmp + "/wal", "--log-level", "warning"],
                                      env=dict(env, EVALFORGE_API_KEY=key), stdout=open(tmp + "/collector.log", "w"), stderr=subprocess.STDOUT))
        if not wait_http(f"http://127.0.0.1:{cport}/healthz", 60):
            raise AssertionError(f"single-node collector did not start ({tmp}/collector.log)")
        yield f"http://127.0.0.1:{bport}", f"http://127.0.0.1:{cport}", f"http://127.0.0.1:{coport}"
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


def wait_single_drained(operator_url, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s, b = http("GET", operator_url + "/healthz", timeout=5)
        if s == 200:
            st = json.loads(b)
            if st.get("queueDepthRecords") == 0 and st.get("pendingTraces") == 0:
                return True
        time.sleep(0.5)
    return False


# --- comparing two backends' answers -----------------------------------------------------------------

def diff(a, b, path="", rel=1e-9, out=None):
    """Field-by-field differences between two JSON values (floats within `rel` relative: sums over
    shards add in another order than on one node)."""
    out = [] if out is None else out
    if len(out) > 20:
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}.{k}: only in {'second' if k not in a else 'first'}")
            else:
                diff(a[k], b[k], f"{path}.{k}", rel, out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{path}[{i}]", rel, out)
    elif isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float))) or abs(a - b) > rel * max(1.0, abs(a), abs(b)):
            out.append(f"{path}: {a!r} vs {b!r}")
    elif a != b:
        out.append(f"{path}: {a!r} vs {b!r}")
    return out


def all_traces(base, query, key=PROJECT_KEY):
    items, cursor = [], None
    while True:
        q = query + "&limit=1000" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        page = api_get(base, "/api/traces?" + q, key)
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def unordered_sorted(summary):
    """A TraceSummary with `models` and `tags` sorted: docs/openapi.yaml defines no order for them, and
    the stores differ (ClickHouse sorts them, SQLite keeps the order spans arrived in)."""
    return dict(summary, models=sorted(summary.get("models", [])), tags=sorted(summary.get("tags", [])))


def tie_sorted(items):
    """The list in the API's order (start_desc) with only ties on the start time put in trace-id order:
    the API defines no order among traces that start in the same nanosecond."""
    return sorted((unordered_sorted(t) for t in items), key=lambda t: (-t["start_unix_nanos"], t["trace_id"]))


def detail(base, trace_id, key=PROJECT_KEY):
    d = api_get(base, f"/api/traces/{trace_id}", key)
    d["trace"] = unordered_sorted(d["trace"])
    return d


def compare_api(cluster_url, single_url, services, t_from, t_to, detail_samples=25, key=PROJECT_KEY, rng=None):
    """Compares, per service, the whole trace list, `detail_samples` trace details and the metrics
    (totals and series) between the cluster's backend and a single node. Returns (differences,
    traces compared, details compared)."""
    rng = rng or random.Random(7)
    problems, n_traces, n_details = [], 0, 0
    for svc in services:
        q = f"service={urllib.parse.quote(svc)}&from={t_from}&to={t_to}"
        a, b = all_traces(cluster_url, q, key), all_traces(single_url, q, key)
        if [t["start_unix_nanos"] for t in a] != sorted((t["start_unix_nanos"] for t in a), reverse=True):
            problems.append(f"{svc}: the cluster's trace list is not in start_desc order")
        problems += [f"traces {svc}{d}" for d in diff(tie_sorted(a), tie_sorted(b))]
        n_traces += len(a)
        ids = [t["trace_id"] for t in a]
        sample = ids[:2] + ids[-2:] + rng.sample(ids, min(len(ids), max(0, detail_samples - 4)))
        for tid in dict.fromkeys(sample):
            problems += [f"trace {tid}{d}" for d in diff(detail(cluster_url, tid, key), detail(single_url, tid, key))]
            n_details += 1
        for group in ("none", "model"):
            mq = f"/api/metrics?service={urllib.parse.quote(svc)}&from={t_from}&to={t_to}&interval=60&group_by={group}"
            problems += [f"metrics {svc} group_by={group}{d}" for d in diff(api_get(cluster_url, mq, key), api_get(single_url, mq, key))]
    return problems, n_traces, n_details
