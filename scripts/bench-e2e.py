#!/usr/bin/env python3
"""scripts/bench e2e: SDK -> collector -> backend -> store under sustained load, twice.

Run 1 keeps every span (sampling ratio 1.0); run 2 is edge mode (tail sampling keeps ~10% of traces,
rollups computed at the collector). Each run: `evalforge load` records spans through the SDK at a
target rate for --duration seconds; the collector forwards to the backend; then the script waits
until the backend has stored everything and compares with what was sent:
  - stored spans (every span in run 1), lost = sent - stored (run 1) or missing rollup requests (run 2);
  - rollup totals (requests, errors, tokens, cost) must equal exactly what the load generator sent;
  - ingest-to-query latency: a probe trace is sent every second during the load and polled by id
    through the API until it is visible.
The store is ClickHouse at $EVALFORGE_CLICKHOUSE_URL (or the 18.16 server the test scripts start),
otherwise the embedded SQLite store. Last line: one JSON object.
"""
import argparse, json, os, random, resource, shutil, signal, socket, subprocess, sys, tempfile, threading, time, urllib.request, urllib.error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(*a):
    print("e2e:", *a, file=sys.stderr, flush=True)


def http(method, url, body=None, headers=None, timeout=10):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


def wait_http(url, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if http("GET", url, timeout=2)[0] == 200:
            return True
        time.sleep(0.2)
    return False


def build():
    """The release evalforge from scripts/build-release (shared by every benchmark)."""
    r = subprocess.run([os.path.join(ROOT, "scripts", "build-release")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit("e2e: build failed")
    return r.stdout.strip().splitlines()[-1]


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


class Probe(threading.Thread):
    """Sends one single-span trace per second to the collector (OTLP/JSON) and measures how long
    until GET /api/traces/{id} returns it."""

    def __init__(self, collector, backend, key):
        super().__init__(daemon=True)
        self.collector, self.backend, self.key = collector, backend, key
        self.stop = threading.Event()
        self.latencies_ms = []
        self.pending = {}
        self.stored_late = 0

    def run(self):
        while not self.stop.is_set():
            tid = "%032x" % random.getrandbits(128)
            now = time.time_ns()
            body = json.dumps({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "probe"}}]},
                              "scopeSpans": [{"spans": [{"traceId": tid, "spanId": "%016x" % random.getrandbits(64), "name": "probe",
                                                          "kind": 1, "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1000),
                                                          "status": {"code": 2}}]}]}]}).encode()
            status, _ = http("POST", self.collector + "/v1/traces", body, {"Content-Type": "application/json", "Authorization": "Bearer " + self.key})
            if status == 200:
                self.pending[tid] = time.time()
            for t, sent in list(self.pending.items()):
                s, b = http("GET", f"{self.backend}/api/traces/{t}", headers={"Authorization": "Bearer " + self.key}, timeout=5)
                if s == 200 and t in b.decode(errors="replace"):
                    self.latencies_ms.append((time.time() - sent) * 1000)
                    del self.pending[t]
            self.stop.wait(0.25)

    def p99(self):
        if not self.latencies_ms:
            return None
        v = sorted(self.latencies_ms)
        return round(v[min(len(v) - 1, int(0.99 * (len(v) - 1) + 0.5))], 1)


def free_ports(n=2):
    """`n` distinct ports nothing listens on now (the kernel's choice), so this benchmark never measures
    another process that happens to hold a fixed port (scripts/cluster's collectors use 4411-4413)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return tuple(s.getsockname()[1] for s in socks)
    finally:
        for s in socks:
            s.close()


def run_once(binary, mode, rate, duration, clickhouse_url, ports, collector_auth):
    tmp = tempfile.mkdtemp(prefix=f"evalforge-e2e-{mode}-")
    key = "ef_bench_" + "%016x" % random.getrandbits(64)
    backend_port, collector_port = ports
    backend = f"http://127.0.0.1:{backend_port}"
    collector = f"http://127.0.0.1:{collector_port}"
    # Env rather than flags, so binaries from before the operator listener and collector keys run too.
    # In key mode (the default, as deployed) the collector checks the load generator's key against the
    # backend (cached), and the backend's rate limits apply at their default tier.
    env = dict(os.environ, EVALFORGE_OPERATOR_PORT="0", EVALFORGE_COLLECTOR_OPERATOR_PORT="0", EVALFORGE_COLLECTOR_AUTH_MODE=collector_auth)
    args = [binary, "backend", "--port", str(backend_port), "--data-dir", tmp + "/backend", "--api-key", key, "--log-level", "warning"]
    if clickhouse_url:
        args += ["--clickhouse-url", clickhouse_url, "--clickhouse-database", f"e2e_{mode}_{random.getrandbits(32):x}"]
    procs = []
    try:
        procs.append(subprocess.Popen(args, env=env, stdout=open(tmp + "/backend.log", "w"), stderr=subprocess.STDOUT))
        if not wait_http(backend + "/healthz", 90) or procs[-1].poll() is not None:
            sys.exit(f"e2e: backend did not start (see {tmp}/backend.log)")
        ratio = "1.0" if mode == "kept" else "0.1"
        cargs = [binary, "collector", "--port", str(collector_port), "--backend-url", backend, "--queue-dir", tmp + "/wal",
                 "--fsync", "interval:100", "--sampling-ratio", ratio, "--log-level", "warning"]
        cenv = dict(env, EVALFORGE_API_KEY=key)
        procs.append(subprocess.Popen(cargs, env=cenv, stdout=open(tmp + "/collector.log", "w"), stderr=subprocess.STDOUT))
        if not wait_http(collector + "/healthz", 60) or procs[-1].poll() is not None:
            sys.exit(f"e2e: collector did not start (see {tmp}/collector.log)")
        probe = Probe(collector, backend, key)
        probe.start()
        cpu0 = [cpu_seconds(p.pid) for p in procs]
        log(f"{mode}: load {rate} spans/s for {duration} s")
        t0 = time.time()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        load = subprocess.run([binary, "load", "--duration", str(duration), "--rate", str(rate), "--collector-url", collector],
                              stdout=subprocess.PIPE, stderr=sys.stderr, text=True, env=dict(os.environ, EVALFORGE_API_KEY=key))
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_load = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        sent = json.loads(load.stdout.strip().splitlines()[-1])
        load_seconds = time.time() - t0
        # Wait until the backend holds every rollup request (and, when keeping everything, every span).
        deadline = time.time() + 300
        usage = {}
        while time.time() < deadline:
            s, b = http("GET", f"{backend}/api/usage?from={sent['start_unix'] - 120}&to={int(time.time()) + 120}", headers={"Authorization": "Bearer " + key}, timeout=60)
            if s == 200:
                usage = json.loads(b)
                done = usage["requests"] >= sent["llm_calls"] and (mode != "kept" or usage["spans"] >= sent["spans"])
                if done:
                    break
            time.sleep(1)
        drain_seconds = time.time() - t0 - load_seconds
        probe.stop.set()
        probe.join(10)
        # Probes accepted by the collector but not seen yet are stored soon after: wait for them (up to
        # 15 s) and read the usage again, so "stored" and "lost" count the same spans.
        wait_until = time.time() + 15
        while probe.pending and time.time() < wait_until:
            for t in list(probe.pending):
                s, b = http("GET", f"{backend}/api/traces/{t}", headers={"Authorization": "Bearer " + key}, timeout=5)
                if s == 200 and t in b.decode(errors="replace"):
                    del probe.pending[t]
                    probe.stored_late += 1
            time.sleep(0.5)
        s, b = http("GET", f"{backend}/api/usage?from={sent['start_unix'] - 120}&to={int(time.time()) + 120}", headers={"Authorization": "Bearer " + key}, timeout=60)
        if s == 200:
            usage = json.loads(b)
        cpu = [cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0)]
        exact = (usage.get("requests") == sent["llm_calls"] and usage.get("errors") == sent["errors"]
                 and usage.get("input_tokens") == sent["input_tokens"] and usage.get("output_tokens") == sent["output_tokens"]
                 and usage.get("cache_read_tokens") == sent["cache_read_tokens"]
                 and abs(usage.get("cost_usd", -1) - sent["cost_usd"]) < 1e-6 * max(1.0, sent["cost_usd"]))
        stored = usage.get("spans", 0) - 0  # probes use service "probe"; counted below
        stored_probe = len(probe.latencies_ms) + probe.stored_late
        delivered = sent["exported"]
        if mode == "kept":
            lost = max(0, delivered - max(0, stored - stored_probe))
        else:
            lost = max(0, sent["llm_calls"] - usage.get("requests", 0))
        result = {
            "mode": mode, "rate_target": rate, "sent": delivered, "sdk_dropped": sent["dropped"], "stored": stored,
            "lost": lost, "rollups_exact": exact, "spans_per_sec": round(delivered / max(0.001, load_seconds + max(0.0, drain_seconds)), 1),
            "load_seconds": round(load_seconds, 1), "drain_seconds": round(drain_seconds, 1),
            "ingest_to_query_p99_ms": probe.p99(), "probes_seen": len(probe.latencies_ms),
            "cpu_backend_s": round(cpu[0], 1), "cpu_collector_s": round(cpu[1], 1),
            "cpu_backend_us_per_stored_span": round(cpu[0] * 1e6 / max(1, stored), 2), "cpu_load_s": round(cpu_load, 1), "usage": usage, "sent_detail": sent,
        }
        log(json.dumps(result))
        return result
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=60)
    ap.add_argument("--kept-rate", type=int, default=25000, help="spans/s sent with every span kept")
    ap.add_argument("--edge-rate", type=int, default=60000, help="spans/s sent in edge mode")
    ap.add_argument("--clickhouse-url", default=os.environ.get("EVALFORGE_CLICKHOUSE_URL", ""))
    ap.add_argument("--binary", default="")
    ap.add_argument("--collector-auth", default="key", choices=("key", "open"),
                    help="key (default, as deployed): the collector checks every request's key against the backend; open: no check")
    ap.add_argument("--modes", default="kept,edge", help="which runs: kept, edge or both (comma-separated); the summary needs both")
    a = ap.parse_args()
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    if not modes or any(m not in ("kept", "edge") for m in modes):
        sys.exit(f"e2e: --modes '{a.modes}': expected kept, edge or kept,edge")
    binary = a.binary or build()
    ch = a.clickhouse_url
    if not ch and os.path.exists(os.path.join(ROOT, "scripts", "clickhouse-server")):
        out = subprocess.run([os.path.join(ROOT, "scripts", "clickhouse-server"), "start"], stdout=subprocess.PIPE, text=True)
        ch = out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else ""
    log("store:", ch or "sqlite (set EVALFORGE_CLICKHOUSE_URL for ClickHouse)")
    kept = run_once(binary, "kept", a.kept_rate, a.duration, ch, free_ports(), a.collector_auth) if "kept" in modes else None
    edge = run_once(binary, "edge", a.edge_rate, a.duration, ch, free_ports(), a.collector_auth) if "edge" in modes else None
    if kept is None or edge is None:
        one = kept or edge
        print(json.dumps({"bench": "e2e", "mode": one["mode"], "spans_per_sec": one["spans_per_sec"], "sent": one["sent"], "stored": one["stored"],
                          "lost": one["lost"], "rollups_exact": one["rollups_exact"], "ingest_to_query_p99_ms": one["ingest_to_query_p99_ms"],
                          "store": "clickhouse" if ch else "sqlite", "duration_s": a.duration, "collector_auth": a.collector_auth,
                          **{k: one[k] for k in ("rate_target", "sdk_dropped", "drain_seconds", "cpu_backend_s", "cpu_collector_s", "cpu_backend_us_per_stored_span", "cpu_load_s")}}))
        return
    print(json.dumps({
        "bench": "e2e", "spans_per_sec": kept["spans_per_sec"], "edge_spans_per_sec": edge["spans_per_sec"],
        "sent": kept["sent"] + edge["sent"], "stored": kept["stored"] + edge["stored"], "lost": kept["lost"] + edge["lost"],
        "rollups_exact": kept["rollups_exact"] and edge["rollups_exact"],
        "ingest_to_query_p99_ms": max([x for x in (kept["ingest_to_query_p99_ms"], edge["ingest_to_query_p99_ms"]) if x is not None], default=None),
        "store": "clickhouse" if ch else "sqlite", "duration_s": a.duration, "collector_auth": a.collector_auth,
        "kept": {k: kept[k] for k in ("rate_target", "sent", "stored", "lost", "sdk_dropped", "drain_seconds", "cpu_backend_s", "cpu_collector_s", "cpu_backend_us_per_stored_span", "cpu_load_s")},
        "edge": {k: edge[k] for k in ("rate_target", "sent", "stored", "lost", "sdk_dropped", "drain_seconds", "cpu_backend_s", "cpu_collector_s", "cpu_backend_us_per_stored_span", "cpu_load_s")},
    }))


if __name__ == "__main__":
    main()
