"""The official OpenTelemetry Python SDK's OTLP/HTTP exporter against our Protos and our collector."""
import json
import time
import urllib.error
import urllib.request

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

import evalforge_harness as h


def make_provider(endpoint, compression=Compression.NoCompression, simple=False):
    provider = TracerProvider(resource=Resource.create({"service.name": "py-agent", "evalforge.project": "interop"}))
    exporter = OTLPSpanExporter(endpoint=endpoint, compression=compression)
    provider.add_span_processor(SimpleSpanProcessor(exporter) if simple else BatchSpanProcessor(exporter))
    return provider


def emit(provider, n=5):
    """OpenLLMetry-style spans (deprecated gen_ai names) under an agent span."""
    tracer = provider.get_tracer("interop-test", "1.0")
    ids = []
    with tracer.start_as_current_span("agent run", kind=SpanKind.INTERNAL) as root:
        ids.append(root.get_span_context())
        for i in range(n):
            with tracer.start_as_current_span("openai.chat", kind=SpanKind.CLIENT) as s:
                s.set_attribute("gen_ai.system", "openai")
                s.set_attribute("llm.request.type", "chat")
                s.set_attribute("gen_ai.request.model", "gpt-4o-mini")
                s.set_attribute("gen_ai.usage.prompt_tokens", 100 + i)
                s.set_attribute("gen_ai.usage.completion_tokens", 10)
                s.set_attribute("gen_ai.prompt.0.role", "user")
                s.set_attribute("gen_ai.prompt.0.content", f"question {i}")
                s.set_attribute("llm.tags", ["a", "b"])
                s.set_attribute("temperature", 0.5)
                s.set_attribute("streaming", True)
                if i == 0:
                    s.set_status(Status(StatusCode.ERROR, "boom"))
                ids.append(s.get_span_context())
    return ids


def test_python_exporter_output_decodes_with_our_protos(tmp_path):
    cap = h.Capture()
    try:
        provider = make_provider(f"http://127.0.0.1:{cap.port}/v1/traces", simple=True)
        ids = emit(provider, n=3)
        provider.shutdown()
        assert cap.paths and all(p == "/v1/traces" for p in cap.paths)
        spans = []
        for i, body in enumerate(cap.bodies):
            f = tmp_path / f"body{i}.pb"
            f.write_bytes(body)
            spans += h.inspect(str(f))
        by_id = {s["span_id"]: s for s in spans}
        assert len(by_id) == 4
        for ctx in ids:
            s = by_id[format(ctx.span_id, "016x")]
            assert s["trace_id"] == format(ctx.trace_id, "032x")
            assert s["resource"]["service.name"] == "py-agent"
            assert s["scope"] == "interop-test"
        chat = [s for s in spans if s["name"] == "openai.chat"]
        assert len(chat) == 3
        assert {c["attributes"]["gen_ai.usage.prompt_tokens"] for c in chat} == {100, 101, 102}
        assert all(c["kind"] == 3 for c in chat)
        assert all(c["attributes"]["llm.tags"] == ["a", "b"] for c in chat)
        assert all(c["attributes"]["temperature"] == 0.5 and c["attributes"]["streaming"] is True for c in chat)
        assert sorted(c["status"] for c in chat) == [0, 0, 2]
        root = [s for s in spans if s["name"] == "agent run"][0]
        assert all(c["parent_span_id"] == root["span_id"] for c in chat)
    finally:
        cap.close()


def test_python_exporter_through_collector_is_normalized(tmp_path):
    backend = h.Capture()
    try:
        with h.collector(tmp_path, backend.port) as port:
            provider = make_provider(f"http://127.0.0.1:{port}/v1/traces", compression=Compression.Gzip)
            ids = emit(provider, n=5)
            assert provider.force_flush(10_000)
            provider.shutdown()
            deadline = time.time() + 20
            spans, rollups = [], []
            while time.time() < deadline and len(spans) < 6:
                time.sleep(0.2)
                spans, rollups = [], []
                for i, body in enumerate(list(backend.bodies)):
                    f = tmp_path / f"batch{i}.pb"
                    f.write_bytes(body)
                    for line in h.inspect(str(f), batch=True):
                        (rollups if "rollup" in line else spans).append(line)
            assert len(spans) == 6
            assert {s["span_id"] for s in spans} == {format(c.span_id, "016x") for c in ids}
            chat = [s for s in spans if s["name"] == "openai.chat"]
            for c in chat:
                a = c["attributes"]
                assert a["gen_ai.provider.name"] == "openai"
                assert a["gen_ai.operation.name"] == "chat"
                assert "gen_ai.system" not in a and "gen_ai.usage.prompt_tokens" not in a
                assert a["gen_ai.usage.output_tokens"] == 10
                assert a["evalforge.cost.usd"] > 0
                assert json.loads(a["gen_ai.input.messages"])[0]["parts"][0]["content"].startswith("question")
            total = sum(r["rollup"]["requests"] for r in rollups)
            assert total == 5
            assert sum(r["rollup"]["input_tokens"] for r in rollups) == sum(range(100, 105))
            assert {r["rollup"]["project"] for r in rollups} == {"interop"}
            assert sum(r["rollup"]["requests"] for r in rollups if r["rollup"]["error"]) == 1
            with urllib.request.urlopen(f"http://127.0.0.1:{h.operator_port(port)}/metrics") as r:
                text = r.read().decode()
            assert "evalforge_collector_spans_received_total 6" in text
    finally:
        backend.close()


def test_collector_answers_bad_requests_clearly(tmp_path):
    backend = h.Capture()
    try:
        with h.collector(tmp_path, backend.port) as port:
            url = f"http://127.0.0.1:{port}/v1/traces"

            def post(body, ctype="application/x-protobuf"):
                req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype}, method="POST")
                try:
                    with urllib.request.urlopen(req) as r:
                        return r.status, r.read().decode(errors="replace")
                except urllib.error.HTTPError as e:
                    return e.code, e.read().decode(errors="replace")

            status, text = post(b"\xff\xfe\xfd garbage")
            assert status == 400 and "protobuf" in text
            status, text = post(b"{}", "text/xml")
            assert status == 415
            status, text = post(b"x" * (9 << 20))
            assert status == 413
            body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "x"},
                {"traceId": "00000000000000000000000000000000", "spanId": "eee19b7ec3c1b175", "name": "zero"}]}]}]}).encode()
            status, text = post(body, "application/json")
            assert status == 200
            assert json.loads(text)["partialSuccess"]["rejectedSpans"] == "1"
    finally:
        backend.close()
