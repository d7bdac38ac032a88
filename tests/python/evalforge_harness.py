"""Helpers shared by the interoperability tests: free ports, a capturing HTTP server, and running
`evalforge` subcommands as real processes."""
import contextlib
import gzip
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request

BIN = os.environ.get("EVALFORGE_BIN", os.path.join(os.path.dirname(__file__), "..", "..", ".build", "debug", "evalforge"))


def free_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Capture:
    """A loopback HTTP server that stores every POST body (inflated) and answers 200."""

    def __init__(self):
        self.bodies = []
        self.paths = []
        self.lock = threading.Lock()
        cap = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with cap.lock:
                    cap.bodies.append(body)
                    cap.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def otlp_spans(self):
        """Every span of the OTLP/HTTP protobuf bodies received so far, as (service.name, scope
        name, span)."""
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
        with self.lock:
            bodies = list(self.bodies)
        out = []
        for body in bodies:
            req = trace_service_pb2.ExportTraceServiceRequest()
            req.ParseFromString(body)
            for rs in req.resource_spans:
                service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
                for ss in rs.scope_spans:
                    for sp in ss.spans:
                        out.append((service, ss.scope.name, sp))
        return out

    def close(self):
        self.server.shutdown()


@contextlib.contextmanager
def mock_llm(*args):
    """`evalforge mock-llm` on a free port (extra flags in `args`), ready; yields the port."""
    port = free_port()
    proc = subprocess.Popen([BIN, "mock-llm", "--port", str(port), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        except Exception:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not come up within {timeout}s")


def inspect(path, batch=False):
    """Decodes a body with `evalforge inspect` and returns the JSON lines."""
    args = [BIN, "inspect", path] + (["--batch"] if batch else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


OPERATOR_PORTS = {}


def operator_port(port):
    """The operator listener (/metrics, detailed /healthz) of the collector `collector()` started on `port`."""
    return OPERATOR_PORTS[port]


@contextlib.contextmanager
def collector(tmp_path, backend_port, *extra):
    port = free_port()
    OPERATOR_PORTS[port] = free_port()
    proc = subprocess.Popen(
        [BIN, "collector", "--open", "--port", str(port), "--operator-port", str(OPERATOR_PORTS[port]), "--backend-url", f"http://127.0.0.1:{backend_port}",
         "--queue-dir", str(tmp_path / "wal"), "--fsync", "never", "--log-level", "warning", *extra],
        stdout=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)
