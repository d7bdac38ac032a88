"""A real `evalforge backend` process on a temporary data directory, and realistic LLM traffic sent
to it over OTLP/HTTP with the OpenTelemetry Python SDK (the path real services use)."""
import contextlib
import json
import os
import random
import subprocess
import time
import urllib.error
import urllib.request

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

import evalforge_harness as h

API_KEY = "ef_ui_test_key_0123456789abcdef"

MODELS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-4o")]
QUESTIONS = [
    "Where is my order #{n}?", "Can I change the delivery address?", "Summarise my last invoice.",
    "Why was my card declined?", "Which plan fits a team of {n}?", "Translate 'thank you' to French.",
]
ANSWERS = [
    "Your order ships today and should arrive on Thursday.", "Yes. Open Orders, pick the order and choose Change address.",
    "Your last invoice is $42.10 for 3 seats, due on the 1st.", "The bank declined it for insufficient funds; try another card.",
    "The Team plan covers up to 25 people with SSO.", "Merci.",
]


@contextlib.contextmanager
def backend(tmp_path, api_key=API_KEY):
    port = h.free_port()
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    log = open(tmp_path / "backend.log", "wb")
    proc = subprocess.Popen([h.BIN, "backend", "--operator-port", "0", "--port", str(port), "--data-dir", str(data), "--api-key", api_key,
                             # the tests' mock LLM and http targets listen on loopback, which the outbound policy refuses by default
                             "--outbound-allow", "127.0.0.0/8,::1,localhost"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        h.wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def messages(role, text):
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def seed(base_url, api_key=API_KEY, traces=60, seed=7, marker=None):
    """Sends `traces` conversations' worth of agent traces (root, one or two LLM calls, a tool call)
    over the last ~6 hours; every 7th fails. Returns a summary of what was sent."""
    rnd = random.Random(seed)
    sent = {"traces": 0, "errors": 0, "models": {}, "sessions": set(), "users": set()}
    providers = {}
    for service in ("support-bot", "billing-api"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        exporter = OTLPSpanExporter(endpoint=f"{base_url}/v1/traces", headers={"Authorization": f"Bearer {api_key}"})
        provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=256))
        providers[service] = provider
    now = time.time_ns()
    history = {}
    for i in range(traces):
        service = "support-bot" if i % 3 else "billing-api"
        tracer = providers[service].get_tracer("evalforge.test")
        prov, model = MODELS[i % len(MODELS)]
        user = f"user-{i % 5}"
        session = f"conv-{i % 12:03d}"
        start = now - int((6 * 3600 - i * (6 * 3600 / traces)) * 1e9)
        failed = i % 7 == 6
        question = QUESTIONS[i % len(QUESTIONS)].format(n=1000 + i)
        if marker and i == 3:
            question += " " + marker
        answer = ANSWERS[i % len(ANSWERS)]
        convo = history.setdefault(session, [{"role": "system", "parts": [{"type": "text", "content": "You are a concise support agent."}]}])
        convo.append({"role": "user", "parts": [{"type": "text", "content": question}]})
        common = {"user.id": user, "session.id": session, "evalforge.tags": ["prod", "beta"] if i % 4 == 0 else ["prod"]}
        root = tracer.start_span("handle_message", kind=SpanKind.SERVER, start_time=start, attributes={**common, "http.route": "/chat"})
        ctx = set_span_in_context(root)
        llm_start = start + 20_000_000
        dur = int(rnd.uniform(0.35, 2.8) * 1e9)
        in_tok, out_tok = rnd.randint(120, 1800), rnd.randint(20, 400)
        attrs = {**common, "gen_ai.operation.name": "chat", "gen_ai.provider.name": prov, "gen_ai.request.model": model,
                 "gen_ai.usage.input_tokens": in_tok, "gen_ai.usage.output_tokens": out_tok,
                 "gen_ai.input.messages": json.dumps(convo), "gen_ai.request.temperature": 0.2}
        if not failed:
            attrs["gen_ai.output.messages"] = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": answer}], "finish_reason": "stop"}])
            attrs["gen_ai.response.finish_reasons"] = ["stop"]
        llm = tracer.start_span(f"chat {model}", kind=SpanKind.CLIENT, context=ctx, start_time=llm_start, attributes=attrs)
        if failed:
            llm.set_status(Status(StatusCode.ERROR, "429 rate limited by provider"))
            root.set_status(Status(StatusCode.ERROR, "upstream model failed"))
            sent["errors"] += 1
        else:
            convo.append({"role": "assistant", "parts": [{"type": "text", "content": answer}]})
        tool = tracer.start_span("execute_tool lookup_order", kind=SpanKind.INTERNAL, context=set_span_in_context(llm),
                                 start_time=llm_start + dur // 3, attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"})
        tool.end(end_time=llm_start + dur // 3 + int(rnd.uniform(5, 60) * 1e6))
        llm.end(end_time=llm_start + dur)
        root.end(end_time=llm_start + dur + 15_000_000)
        sent["traces"] += 1
        sent["models"][model] = sent["models"].get(model, 0) + 1
        sent["sessions"].add(session)
        sent["users"].add(user)
    for p in providers.values():
        p.force_flush()
        p.shutdown()
    return sent


def get(base_url, path, api_key=API_KEY):
    req = urllib.request.Request(base_url + path, headers={"Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def wait_for_traces(base_url, count, api_key=API_KEY, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, _, body = get(base_url, "/api/traces?limit=1000", api_key)
        if status == 200 and len(json.loads(body)["items"]) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"backend did not show {count} traces within {timeout}s")
