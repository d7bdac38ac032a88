"""Examples/HummingbirdService as a user runs it: swift-otel's tracer (Hummingbird's TracingMiddleware)
and EvalForge's SDK in one ServiceGroup, no hand-written flush service. Its LLM spans must be children of
Hummingbird's request spans through swift-otel's own tracer and W3C propagation (not a test tracer), and
SIGTERM must flush both exporters and exit 0.

Run by scripts/test after scripts/build-examples; skipped visibly when the example binary is missing."""
import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import evalforge_harness as h  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
EXAMPLE = os.environ.get("EVALFORGE_EXAMPLE_HUMMINGBIRD",
                         os.path.join(ROOT, ".build-examples", "debug", "HummingbirdService"))




@pytest.fixture
def mock_llm():
    with h.mock_llm() as port:
        yield port


@pytest.mark.skipif(not os.path.exists(EXAMPLE), reason=f"{EXAMPLE} not built (scripts/build-examples builds it)")
@pytest.mark.parametrize("stream", [False, True])
def test_llm_spans_are_children_of_hummingbird_request_spans_through_swift_otel(mock_llm, stream):
    capture = h.Capture()  # stands in for the collector: both exporters post OTLP/HTTP protobuf here
    port = h.free_port()
    env = dict(os.environ, PORT=str(port), LLM_BASE_URL=f"http://127.0.0.1:{mock_llm}/v1",
               EVALFORGE_COLLECTOR_URL=f"http://127.0.0.1:{capture.port}")
    env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    proc = subprocess.Popen([EXAMPLE], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        h.wait_http(f"http://127.0.0.1:{port}/health")
        traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        req = urllib.request.Request(f"http://127.0.0.1:{port}/chat",
                                     data=json.dumps({"message": "Where is my order?", "userId": "u-1", "stream": stream}).encode(),
                                     headers={"Content-Type": "application/json", "traceparent": traceparent})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
            answer = json.loads(r.read())
        assert answer["reply"], answer
        # Graceful shutdown flushes both exporters within their deadlines and exits 0.
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        capture.close()

    got = capture.otlp_spans()
    trace_id = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
    server = [s for svc, scope, s in got if s.kind == s.SPAN_KIND_SERVER and s.trace_id == trace_id]
    llm = [s for svc, scope, s in got if s.name.startswith("chat ")]
    prompt = [s for svc, scope, s in got if s.name == "build prompt"]
    names = sorted(s.name for _, _, s in got)
    assert len(server) == 1, names
    assert len(llm) == 1, names
    assert len(prompt) == 1, names
    # The request span continues the caller's traceparent (Hummingbird + swift-otel's propagator) …
    assert server[0].parent_span_id == bytes.fromhex("00f067aa0ba902b7")
    # … and the SDK's LLM span and the handler's own withSpan are its children, in the same trace.
    assert llm[0].trace_id == trace_id and llm[0].parent_span_id == server[0].span_id
    assert prompt[0].trace_id == trace_id and prompt[0].parent_span_id == server[0].span_id
    # The LLM span is EvalForge's (GenAI attributes), the request span swift-otel's.
    attrs = {a.key: a.value for a in llm[0].attributes}
    assert attrs["gen_ai.request.model"].string_value == "gpt-4o-mini"
    assert attrs["gen_ai.usage.input_tokens"].int_value > 0
    assert answer["traceId"] == trace_id.hex()
