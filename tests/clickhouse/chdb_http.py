#!/usr/bin/env python3
"""A current ClickHouse engine (chdb-core, ClickHouse 26.x in-process) served over ClickHouse's HTTP
interface, so the Swift store tests talk to it exactly as to a real server.

    python3 tests/clickhouse/chdb_http.py --port 18124 --path /tmp/evalforge-chdb

Supported subset of the HTTP interface (what EvalForge's ClickHouseStore uses):
  * POST / (or GET /?query=...) with the query in the body, or in `query` with the body as INSERT data;
  * `param_<name>` URL parameters for `{name:Type}` query parameters (values in the escaped format,
    as the real server expects);
  * `database` (USE before the query) and `default_format`;
  * INSERT ... FORMAT <fmt> with the rows in the body (RowBinary, Native, TSV, ...): the body goes to a
    temporary file and is inserted with `INSERT INTO t (cols) SELECT * FROM file(tmp, fmt)`, the
    structure coming from the target table;
  * errors: HTTP 500 with ClickHouse's `Code: N. DB::Exception: ...` text, like the real server.
chdb runs one query at a time (one session), so requests are served one after another.
"""
import argparse
import os
import re
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import chdb
from chdb import session as chdb_session

INSERT_FORMAT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<table>[`\w.]+)\s*(?P<cols>\([^)]*\))?\s*FORMAT\s+(?P<fmt>\w+)\s*$",
    re.IGNORECASE | re.DOTALL,
)
FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)


class Engine:
    def __init__(self, path: str):
        self.lock = threading.Lock()
        self.session = chdb_session.Session(path)
        self.tmpdir = tempfile.mkdtemp(prefix="chdb-http-")

    def run(self, sql: str, data: bytes, params: dict, database: str | None, default_format: str) -> bytes:
        with self.lock:
            if database:
                self.session.query(f"USE `{database.replace('`', '')}`")
            m = INSERT_FORMAT.match(sql) if data else None
            if m:
                path = os.path.join(self.tmpdir, "insert.bin")
                with open(path, "wb") as f:
                    f.write(data)
                fmt = m.group("fmt")
                rewritten = f"INSERT INTO {m.group('table')} {m.group('cols') or ''} SELECT * FROM file('{path}', '{fmt}')"
                self.session.query(rewritten, "TabSeparated", params=params or None)
                return b""
            if data:
                sql = sql + "\n" + data.decode("utf-8")
            fmt = default_format
            fm = FORMAT_CLAUSE.search(sql)
            if fm:
                fmt = fm.group(1)
                sql = sql[: fm.start()]
            result = self.session.query(sql, fmt, params=params or None)
            return result.bytes() if result is not None else b""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine: Engine

    def log_message(self, *args):  # quiet
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=UTF-8"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-ClickHouse-Server-Display-Name", "chdb-http")
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, body: bytes):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/ping":
            return self._reply(200, b"Ok.\n")
        qs = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        one = {k: v[-1] for k, v in qs.items()}
        params = {k[len("param_"):]: v for k, v in one.items() if k.startswith("param_")}
        if "query" in one:
            sql, data = one["query"], body
        else:
            sql, data = body.decode("utf-8"), b""
        if not sql.strip():
            return self._reply(200, b"Ok.\n")
        try:
            out = self.engine.run(sql, data, params, one.get("database"), one.get("default_format", "TabSeparated"))
        except Exception as e:  # chdb raises ChdbError with ClickHouse's message
            msg = str(e)
            if not msg.startswith("Code:"):
                msg = "Code: 1000. DB::Exception: " + msg
            return self._reply(500, msg.encode("utf-8") + b"\n")
        self._reply(200, out, "application/octet-stream")

    def do_GET(self):
        self._handle(b"")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        self._handle(body)

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18124)
    ap.add_argument("--path", default="/tmp/evalforge-chdb")
    a = ap.parse_args()
    Handler.engine = Engine(a.path)
    server = ThreadingHTTPServer((a.host, a.port), Handler)
    server.daemon_threads = True
    print(f"chdb {chdb.__version__} (ClickHouse {Handler.engine.run('SELECT version()', b'', {}, None, 'TSV').decode().strip()}) on http://{a.host}:{a.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
