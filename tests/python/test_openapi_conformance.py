"""The query API's responses conform to docs/openapi.yaml: the spec is a valid OpenAPI 3.1 document,
and every JSON response (and every JSONL export line) of a real backend, seeded over OTLP by the
OpenTelemetry SDK, validates against the schema the spec names for it."""
import json
import os
import urllib.parse

import jsonschema
import pytest
import yaml
from openapi_spec_validator import validate

import evalforge_backend as eb

SPEC_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "openapi.yaml")


@pytest.fixture(scope="module")
def spec():
    with open(SPEC_PATH) as f:
        doc = yaml.safe_load(f)
    validate(doc)
    return doc


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("openapi")
    with eb.backend(tmp) as url:
        sent = eb.seed(url, traces=40)
        eb.wait_for_traces(url, 40)
        yield url, sent


def response_schema(spec, path, status, content_type="application/json"):
    op = spec["paths"][path]["get"]
    resp = op["responses"][str(status)]
    if "$ref" in resp:
        resp = spec["components"]["responses"][resp["$ref"].split("/")[-1]]
    schema = resp["content"][content_type]["schema"]
    # Resolve "#/components/..." refs against the whole document.
    return {**schema, "components": spec["components"]}


def check(spec, url, path_template, path, status=200, content_type="application/json"):
    code, headers, body = eb.get(url, path)
    assert code == status, f"{path}: {code} {body[:300]!r}"
    assert headers["Content-Type"].startswith(content_type.split(";")[0]), headers["Content-Type"]
    schema = response_schema(spec, path_template, status, content_type)
    validator = jsonschema.Draft202012Validator(schema)
    if content_type == "application/x-ndjson":
        docs = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    else:
        docs = [json.loads(body)]
    for d in docs:
        errors = sorted(validator.iter_errors(d), key=lambda e: list(e.path))
        assert not errors, f"{path}: {errors[0].message} at {list(errors[0].path)}"
    return docs


def test_spec_is_valid_openapi(spec):
    assert spec["openapi"].startswith("3.1")
    assert {"/api/traces", "/api/traces/{trace_id}", "/api/sessions", "/api/sessions/{session_id}", "/api/users",
            "/api/users/{user_id}", "/api/metrics", "/api/export/spans", "/api/export/traces"} <= set(spec["paths"])


def test_list_and_detail_responses_match_the_spec(spec, server):
    url, sent = server
    page = check(spec, url, "/api/traces", "/api/traces?limit=10")[0]
    assert len(page["items"]) == 10 and page["next_cursor"]
    check(spec, url, "/api/traces", "/api/traces?limit=10&cursor=" + urllib.parse.quote(page["next_cursor"]))
    check(spec, url, "/api/traces", "/api/traces?status=error&model=gpt-4o-mini&sort=cost_desc&min_duration_ms=1")
    trace_id = page["items"][0]["trace_id"]
    detail = check(spec, url, "/api/traces/{trace_id}", f"/api/traces/{trace_id}")[0]
    root = detail["spans"][0]
    assert root["children"][0]["input"][0]["role"] == "system"
    assert root["children"][0]["children"][0]["name"] == "execute_tool lookup_order"

    sessions = check(spec, url, "/api/sessions", "/api/sessions")[0]
    assert {s["session_id"] for s in sessions["items"]} == sent["sessions"]
    check(spec, url, "/api/sessions/{session_id}", "/api/sessions/" + sessions["items"][0]["session_id"])
    users = check(spec, url, "/api/users", "/api/users")[0]
    assert {u["user_id"] for u in users["items"]} == sent["users"]
    check(spec, url, "/api/users/{user_id}", "/api/users/user-1?limit=3")


def test_metrics_match_the_spec(spec, server):
    url, sent = server
    for group in ("none", "model", "provider", "service", "user"):
        m = check(spec, url, "/api/metrics", f"/api/metrics?group_by={group}&interval=15m")[0]
        assert m["totals"]["requests"] == sent["traces"]
        assert m["totals"]["errors"] == sent["errors"]
    by_model = check(spec, url, "/api/metrics", "/api/metrics?group_by=model&interval=1h")[0]
    assert {s["group"]: s["totals"]["requests"] for s in by_model["series"]} == sent["models"]


def test_exports_match_the_spec(spec, server):
    url, sent = server
    spans = check(spec, url, "/api/export/spans", "/api/export/spans?format=jsonl", content_type="application/x-ndjson")
    assert len(spans) == 3 * sent["traces"]
    traces = check(spec, url, "/api/export/traces", "/api/export/traces?format=jsonl", content_type="application/x-ndjson")
    assert len(traces) == sent["traces"]
    code, headers, body = eb.get(url, "/api/export/spans?format=csv&llm_only=true")
    assert code == 200 and headers["Content-Type"].startswith("text/csv")
    assert headers.get("Transfer-Encoding") == "chunked"
    assert len(body.decode().strip().split("\r\n")) == 1 + sent["traces"]


@pytest.mark.parametrize("path,template,status", [
    ("/api/traces?cursor=nope", "/api/traces", 400),
    ("/api/traces?min_cost_usd=cheap", "/api/traces", 400),
    ("/api/metrics?interval=7s", "/api/metrics", 400),
    ("/api/traces/xyz", "/api/traces/{trace_id}", 400),
    ("/api/traces/" + "0" * 32, "/api/traces/{trace_id}", 404),
    ("/api/sessions/none", "/api/sessions/{session_id}", 404),
])
def test_errors_match_the_spec(spec, server, path, template, status):
    url, _ = server
    doc = check(spec, url, template, path, status=status)[0]
    assert doc["error"]["message"]


def test_missing_key_is_401_in_the_spec_shape(spec, server):
    url, _ = server
    code, _, body = eb.get(url, "/api/traces", api_key="nope")
    assert code == 401
    schema = response_schema(spec, "/api/traces", 401)
    jsonschema.validate(json.loads(body), schema, cls=jsonschema.Draft202012Validator)
