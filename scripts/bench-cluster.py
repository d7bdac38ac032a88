#!/usr/bin/env python3
"""scripts/bench cluster: the loopback cluster (scripts/cluster: ZooKeeper, 2 shards x 2 replicas of
clickhouse-server 18.16, 2 backends, 3 collectors) under sustained SDK load, with the faults of
issue 16 §6 — the long version of tests/python/test_cluster_faults.py.

Phases (one `evalforge load` per collector in each; services are named per phase):
  1. kept: every span kept (collector sampling ratio 1.0), no fault: spans/s (acknowledged spans over
     load + drain time) and the CPU of every process over that window (utime+stime from /proc,
     summed over restarts) divided by the spans stored -> cpu_us_per_span_<process>.
  2. edge: collectors restarted with --sampling-ratio 0.1 (tail sampling keeps ~10% of traces; rollups
     computed at the collector before sampling): spans/s sent, rollup totals exact, CPU per span sent.
  3. faults: kept mode again, each load generator behind a recording tap (what the collector
     acknowledged); kill -9 one ClickHouse replica, one backend and one collector, then start them
     again (the collector on its WAL). Every acknowledged span must be stored exactly once (lost,
     duplicates), and trace list, trace details and metrics through a backend equal a single node fed
     the same acknowledged requests (query_equal).
  4. fill: more kept load until the Distributed tables hold at least --min-spans spans.
  5. queries through a backend (Distributed tables): trace list p95 (several filters) and
     trace-by-id p95.
The last stdout line is one JSON object; progress goes to stderr.
"""
import argparse, json, os, random, resource, subprocess, sys, tempfile, threading, time, urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
import evalforge_cluster as ec  # noqa: E402

log = ec.log


def p95(values):
    v = sorted(values)
    return round(v[min(len(v) - 1, int(0.95 * (len(v) - 1) + 0.5))], 1) if v else None


def run_loads(load_binary, urls, rate, seconds, services):
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [ec.load(load_binary, u, rate, seconds, s) for u, s in zip(urls, services)]
    results = [ec.load_result(p, timeout=seconds + 600) for p in procs]
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return results, (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)


def stored_rows(services):
    names = ",".join("'" + s + "'" for s in services)
    rows, distinct = ec.clickhouse(ec.CLICKHOUSE["s1r1"], f"SELECT count(), uniqExact(trace_id, span_id) FROM evalforge.spans WHERE service IN ({names}) FORMAT TabSeparated").split()
    return int(rows), int(distinct)


def wait_stored(services, expected, timeout=300):
    deadline = time.time() + timeout
    while True:
        rows, distinct = stored_rows(services)
        if distinct >= expected or time.time() > deadline:
            return rows, distinct
        time.sleep(1)


def cpu_fields(window, spans, prefix):
    out = {}
    by = {"collector": [n for n in window.seconds if n.startswith("collector-")], "backend": [n for n in window.seconds if n.startswith("backend-")]}
    for name, members in by.items():
        out[f"{prefix}cpu_us_per_span_{name}"] = round(sum(window.seconds[n] for n in members) * 1e6 / max(1, spans), 2)
    for n in sorted(window.seconds):
        if n.startswith("clickhouse-") or n == "zookeeper":
            out[f"{prefix}cpu_us_per_span_{n.replace('-', '_')}"] = round(window.seconds[n] * 1e6 / max(1, spans), 2)
    out[f"{prefix}cpu_s"] = {n: round(s, 1) for n, s in sorted(window.seconds.items())}
    return out


def kept_phase(cluster, load_binary, rate, seconds, run):
    services = [f"kept-{run}-{i}" for i in (1, 2, 3)]
    log(f"kept: {rate} spans/s into each of 3 collectors for {seconds} s")
    t0 = time.time()
    with cluster.cpu_window() as w:
        sent, cpu_load = run_loads(load_binary, [f"http://127.0.0.1:{p}" for p in ec.COLLECTOR_PORTS], rate, seconds, services)
        load_s = time.time() - t0
        exported = sum(s["exported"] for s in sent)
        cluster.wait_drained(600)
        rows, distinct = wait_stored(services, exported)
    total_s = time.time() - t0
    r = {"services": services, "exported": exported, "sdk_dropped": sum(s["dropped"] for s in sent), "export_failed": sum(s["export_failed"] for s in sent),
         "stored": distinct, "rows": rows, "lost": max(0, exported - distinct), "duplicates": rows - distinct,
         "spans_per_sec": round(exported / total_s, 1), "load_s": round(load_s, 1), "drain_s": round(total_s - load_s, 1),
         "cpu_us_per_span_load": round(cpu_load * 1e6 / max(1, exported), 2), **cpu_fields(w, distinct, "")}
    log("kept:", json.dumps(r))
    return r


def edge_phase(cluster, load_binary, rate, seconds, run):
    services = [f"edge-{run}-{i}" for i in (1, 2, 3)]
    for i in (1, 2, 3):
        cluster.stop(f"collector-{i}")
    cluster.up(collector_args="--sampling-ratio 0.1")
    log(f"edge: {rate} spans/s into each of 3 collectors (sampling ratio 0.1) for {seconds} s")
    t0 = time.time()
    with cluster.cpu_window() as w:
        sent, cpu_load = run_loads(load_binary, [f"http://127.0.0.1:{p}" for p in ec.COLLECTOR_PORTS], rate, seconds, services)
        load_s = time.time() - t0
        cluster.wait_drained(600)
        # Rollups are exact (computed before sampling): wait for every request of every service.
        want = {k: sum(s[k] for s in sent) for k in ("llm_calls", "errors", "input_tokens", "output_tokens", "cache_read_tokens")}
        deadline, totals, cost = time.time() + 300, {}, 0.0
        while time.time() < deadline:
            totals = {"llm_calls": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0}
            for svc in services:
                m = ec.api_get(f"http://127.0.0.1:{ec.BACKEND_PORTS[0]}", f"/api/metrics?service={svc}&from={int(t0) - 120}&to={int(time.time()) + 120}")["totals"]
                totals["llm_calls"] += m.get("requests", 0)
                totals["errors"] += m.get("errors", 0)
                for k in ("input_tokens", "output_tokens", "cache_read_tokens"):
                    totals[k] += m.get(k, 0)
            cost = sum(ec.api_get(f"http://127.0.0.1:{ec.BACKEND_PORTS[0]}", f"/api/metrics?service={svc}&from={int(t0) - 120}&to={int(time.time()) + 120}")["totals"]["cost_usd"] for svc in services)
            if totals["llm_calls"] >= want["llm_calls"]:
                break
            time.sleep(1)
        rows, distinct = stored_rows(services)
    total_s = time.time() - t0
    exported = sum(s["exported"] for s in sent)
    r = {"services": services, "exported": exported, "sdk_dropped": sum(s["dropped"] for s in sent), "stored": distinct, "rows": rows,
         "duplicates": rows - distinct, "lost_requests": max(0, want["llm_calls"] - totals["llm_calls"]), "rollups_exact": totals == want and abs(cost - sum(x["cost_usd"] for x in sent)) < 1e-6 * max(1.0, cost),
         "rollup_totals": totals, "sent_totals": want, "spans_per_sec": round(exported / total_s, 1), "load_s": round(load_s, 1), "drain_s": round(total_s - load_s, 1),
         "cpu_us_per_span_load": round(cpu_load * 1e6 / max(1, exported), 2), **cpu_fields(w, exported, "sent_")}
    log("edge:", json.dumps(r))
    for i in (1, 2, 3):
        cluster.stop(f"collector-{i}")
    cluster.up()
    return r


def faults_phase(cluster, load_binary, rate, seconds, run, tmp, single_ch):
    services = [f"faults-{run}-{i}" for i in (1, 2, 3)]
    taps = [ec.Tap(p, os.path.join(tmp, f"tap-{i}.bin")) for i, p in enumerate(ec.COLLECTOR_PORTS, 1)]
    plan = [(0.2, "clickhouse-s2r1"), (0.35, "backend-2"), (0.5, "collector-3"), (0.6, "up")]
    done, errors = [], []
    dead_before = cluster.dead_letters()

    def inject(start):
        try:
            for frac, action in plan:
                time.sleep(max(0.0, start + frac * seconds - time.time()))
                cluster.up() if action == "up" else cluster.kill9(action)
                done.append(action)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    log(f"faults: {rate} spans/s into each of 3 collectors (through recording taps) for {seconds} s; kill -9 at {plan}")
    t0 = time.time()
    threading.Thread(target=inject, args=(t0,), daemon=True).start()
    sent, _ = run_loads(load_binary, [t.url for t in taps], rate, seconds, services)
    for t in taps:
        t.close()
    while len(done) < len(plan) and not errors and time.time() < t0 + seconds + 300:
        time.sleep(1)
    drained = cluster.wait_drained(600)
    acked = ec.span_keys([t.path for t in taps])
    acked_set = set(acked)
    stored, missing = ec.wait_stored(acked_set, services, 300)
    total_s = time.time() - t0
    duplicates = sum(c - 1 for c in stored.values() if c > 1)
    r = {"services": services, "dead_letters": cluster.dead_letters()[len(dead_before):][:5], "faults_done": done, "fault_errors": errors, "drained": drained, "acknowledged": len(acked_set),
         "acknowledged_again_after_resend": len(acked) - len(acked_set), "exported": sum(s["exported"] for s in sent), "export_failed": sum(s["export_failed"] for s in sent),
         "stored": len(stored), "lost": len(missing), "duplicates": duplicates, "never_acknowledged_stored": len(stored.keys() - acked_set),
         "spans_per_sec": round(len(acked_set) / total_s, 1)}
    t_from, t_to = min(s["start_unix"] for s in sent) - 120, int(time.time()) + 120
    # Traces whose summary block the replica kill lost are listed again once the backends' repair pass
    # (every 30 s, after 60 s missing: the production defaults) gave them their row.
    deadline, expected = time.time() + 180, len(acked_set) // 3
    while True:
        listed = sum(len(ec.all_traces(f"http://127.0.0.1:{ec.BACKEND_PORTS[0]}", f"service={svc}&from={t_from}&to={t_to}")) for svc in services)
        if listed >= expected or time.time() > deadline:
            break
        time.sleep(5)
    r["traces_listed"], r["traces_expected"] = listed, expected
    with ec.single_node(cluster.binary, clickhouse_url=single_ch) as (backend, collector, operator):
        log(f"faults: replaying {sum(t.acked_requests for t in taps)} acknowledged requests into a single node ({single_ch or 'sqlite'})")
        ec.replay([t.path for t in taps], collector)
        ec.wait_single_drained(operator, 600)
        deadline = time.time() + 300
        while time.time() < deadline and ec.api_get(backend, f"/api/usage?from={t_from}&to={t_to}").get("spans", 0) < len(acked_set):
            time.sleep(1)
        problems, traces, details = ec.compare_api(f"http://127.0.0.1:{ec.BACKEND_PORTS[0]}", backend, services, t_from, t_to)
    r.update({"query_equal": not problems and traces > 0, "traces_compared": traces, "details_compared": details, "differences": problems[:20]})
    log("faults:", json.dumps(r))
    return r


def fill(cluster, load_binary, rate, min_spans, run):
    total = int(ec.clickhouse(ec.CLICKHOUSE["s1r1"], "SELECT count() FROM evalforge.spans").strip())
    n = 0
    while total < min_spans:
        seconds = max(10, min(300, int((min_spans - total) / max(1, 3 * rate) * 1.2) + 1))
        services = [f"fill-{run}-{n}-{i}" for i in (1, 2, 3)]
        log(f"fill: {total} spans stored; {rate} spans/s per collector for {seconds} s more")
        run_loads(load_binary, [f"http://127.0.0.1:{p}" for p in ec.COLLECTOR_PORTS], rate, seconds, services)
        cluster.wait_drained(600)
        total = int(ec.clickhouse(ec.CLICKHOUSE["s1r1"], "SELECT count() FROM evalforge.spans").strip())
        n += 1
    return total


def queries(services, rounds):
    backends = [f"http://127.0.0.1:{p}" for p in ec.BACKEND_PORTS]
    trace_ids = ec.clickhouse(ec.CLICKHOUSE["s1r1"], "SELECT DISTINCT trace_id FROM evalforge.spans WHERE cityHash64(trace_id) % 1000 = 7 LIMIT 2000 FORMAT TabSeparated").split()
    lists = ["", "service=" + services[0], "model=gpt-4o-mini", "status=error", "sort=cost_desc", "sort=duration_desc", "min_cost_usd=0.0001", "q=follow-up"]
    list_ms, by_id_ms, by_filter = [], [], {}
    rng = random.Random(11)
    for i in range(rounds):
        b = backends[i % 2]
        f = lists[i % len(lists)]
        t = time.perf_counter()
        ec.api_get(b, "/api/traces?limit=50" + ("&" + f if f else ""))
        list_ms.append((time.perf_counter() - t) * 1000)
        by_filter.setdefault(f.split("-")[0] if f.startswith("service=") else (f or "none"), []).append(list_ms[-1])
        tid = rng.choice(trace_ids)
        t = time.perf_counter()
        ec.api_get(b, f"/api/traces/{tid}")
        by_id_ms.append((time.perf_counter() - t) * 1000)
    log("list p95 by filter (ms):", json.dumps({k: p95(v) for k, v in by_filter.items()}))
    return p95(list_ms), p95(by_id_ms), {k: p95(v) for k, v in by_filter.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.environ.get("EVALFORGE_BIN", ""), help="evalforge to run (default: scripts/build-release)")
    ap.add_argument("--load-binary", default="", help="evalforge that runs `evalforge load` (default: --binary); a release one keeps a debug system under test from being starved by its load generators")
    ap.add_argument("--duration", type=int, default=60, help="seconds of load in each of the kept, edge and faults phases")
    ap.add_argument("--kept-rate", type=int, default=2000, help="spans/s per load generator (three) in kept mode")
    ap.add_argument("--edge-rate", type=int, default=5000, help="spans/s per load generator (three) in edge mode")
    ap.add_argument("--min-spans", type=int, default=1_000_000, help="spans the Distributed tables hold before the queries")
    ap.add_argument("--query-rounds", type=int, default=200)
    ap.add_argument("--cluster-dir", default=os.environ.get("EVALFORGE_CLUSTER_DIR", "/tmp/evalforge-bench-cluster"))
    ap.add_argument("--single-clickhouse-url", default=os.environ.get("EVALFORGE_TEST_CLICKHOUSE_LEGACY_URL", ""),
                    help="ClickHouse for the single-node comparison (its own database); default SQLite")
    ap.add_argument("--keep", action="store_true", help="leave the cluster running (and its data) afterwards")
    ap.add_argument("--skip-faults", action="store_true", help="kept and edge phases, fill and queries only (e.g. CPU figures from a binary without the fault fixes)")
    a = ap.parse_args()
    binary = a.binary
    if not binary:
        r = subprocess.run([os.path.join(ROOT, "scripts", "build-release")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        if r.returncode != 0:
            sys.exit("bench-cluster: release build failed")
        binary = r.stdout.strip().splitlines()[-1]
    load_binary = a.load_binary or binary
    cluster = ec.Cluster(a.cluster_dir, binary)
    os.makedirs(a.cluster_dir, exist_ok=True)
    os.chmod(a.cluster_dir, 0o755)  # Postgres runs as its own user under root
    log(f"binary {binary}; cluster in {a.cluster_dir}; load average {os.getloadavg()}")
    cluster.up()
    run = "%06x" % random.getrandbits(24)
    tmp = tempfile.mkdtemp(prefix="evalforge-bench-cluster-")
    load_before = os.getloadavg()
    try:
        kept = kept_phase(cluster, load_binary, a.kept_rate, a.duration, run)
        edge = edge_phase(cluster, load_binary, a.edge_rate, a.duration, run)
        faults = None if a.skip_faults else faults_phase(cluster, load_binary, a.kept_rate, a.duration, run, tmp, a.single_clickhouse_url or None)
        total = fill(cluster, load_binary, a.kept_rate, a.min_spans, run)
        list_p95, by_id_p95, list_by_filter = queries(kept["services"], a.query_rounds)
    finally:
        if not a.keep:
            cluster.down()
    if faults is None:
        faults = {"lost": 0, "duplicates": 0, "faults_done": [], "query_equal": None, "acknowledged": 0, "traces_compared": 0}
    result = {
        "bench": "cluster", "spans_per_sec": kept["spans_per_sec"], "edge_spans_per_sec": edge["spans_per_sec"],
        "lost": kept["lost"] + faults["lost"] + edge["lost_requests"], "duplicates": kept["duplicates"] + faults["duplicates"] + edge["duplicates"],
        "faults": ["clickhouse-replica", "backend", "collector"] if faults["faults_done"] == ["clickhouse-s2r1", "backend-2", "collector-3", "up"] else faults["faults_done"],
        "query_equal": faults["query_equal"], "trace_by_id_p95_ms": by_id_p95, "list_p95_ms": list_p95, "stored_spans": total, "list_p95_ms_by_filter": list_by_filter,
        "rollups_exact": edge["rollups_exact"], "faults_acknowledged": faults["acknowledged"], "faults_traces_compared": faults["traces_compared"],
        **{k: v for k, v in kept.items() if k.startswith("cpu_us_per_span")},
        "edge_cpu_us_per_sent_span_collector": edge["sent_cpu_us_per_span_collector"],
        "kept_rate": a.kept_rate * 3, "edge_rate": a.edge_rate * 3, "duration_s": a.duration, "binary": binary, "load_binary": load_binary,
        "load_average_start": [round(x, 2) for x in load_before], "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "kept_sdk_dropped": kept["sdk_dropped"], "edge_sdk_dropped": edge["sdk_dropped"],
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
