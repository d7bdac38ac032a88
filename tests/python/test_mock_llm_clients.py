"""The official openai and anthropic Python clients against `evalforge mock-llm`, unchanged."""
import subprocess

import anthropic
import openai
import pytest

import evalforge_harness as h


@pytest.fixture(scope="module")
def mock_url():
    port = h.free_port()
    proc = subprocess.Popen([h.BIN, "mock-llm", "--port", str(port), "--seed", "7", "--latency", "uniform:1-5"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        h.wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def oa(url, **kw):
    return openai.OpenAI(base_url=url + "/v1", api_key="test", max_retries=kw.pop("max_retries", 0), **kw)


def an(url, **kw):
    return anthropic.Anthropic(base_url=url, api_key="test", max_retries=kw.pop("max_retries", 0), **kw)


WEATHER_OA = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city", "days"]}}}]
WEATHER_AN = [{"name": "get_weather", "description": "weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city", "days"]}}]


def test_openai_chat(mock_url):
    r = oa(mock_url).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello there"}], max_tokens=50)
    assert r.id.startswith("chatcmpl-")
    assert r.model == "gpt-4o-mini"
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    # Deterministic for a seed.
    again = oa(mock_url).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello there"}], max_tokens=50)
    assert again.choices[0].message.content == r.choices[0].message.content and again.id == r.id


def test_openai_cached_and_reasoning_tokens(mock_url):
    long = "word " * 3000
    r = oa(mock_url).chat.completions.create(model="o3-mini", messages=[{"role": "user", "content": long}])
    assert r.usage.prompt_tokens >= 1024
    assert r.usage.prompt_tokens_details.cached_tokens > 0 and r.usage.prompt_tokens_details.cached_tokens % 128 == 0
    assert r.usage.completion_tokens_details.reasoning_tokens > 0
    forced = oa(mock_url, default_headers={"x-mock-cached-tokens": "3"}).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi there"}])
    assert forced.usage.prompt_tokens_details.cached_tokens == 3


def test_openai_stream_with_usage(mock_url):
    stream = oa(mock_url).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Stream please"}], stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len([c for c in chunks if c.choices and c.choices[0].delta.content])
    non_stream = oa(mock_url).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Stream please"}])
    assert non_stream.choices[0].message.content == text


def test_openai_tool_calls(mock_url):
    r = oa(mock_url).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=WEATHER_OA)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    import json
    args = json.loads(call.function.arguments)
    assert isinstance(args["city"], str) and isinstance(args["days"], int)
    # Streaming tool call, reassembled by the client library's helper.
    with oa(mock_url).chat.completions.stream(model="gpt-4o", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=WEATHER_OA) as s:
        final = s.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert json.loads(final.choices[0].message.tool_calls[0].function.arguments) == args
    # After the tool result, a text answer.
    r2 = oa(mock_url).chat.completions.create(model="gpt-4o", tools=WEATHER_OA, messages=[
        {"role": "user", "content": "Weather in Paris?"}, r.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"}])
    assert r2.choices[0].message.content and not r2.choices[0].message.tool_calls


def test_openai_faults(mock_url):
    with pytest.raises(openai.RateLimitError) as e:
        oa(mock_url, default_headers={"x-mock-fault": "429"}).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert e.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.InternalServerError):
        oa(mock_url, default_headers={"x-mock-fault": "500"}).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        oa(mock_url).chat.completions.create(model="gpt-4o", messages=[])
    with pytest.raises(Exception):
        for _ in oa(mock_url, default_headers={"x-mock-fault": "cut"}).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}], stream=True):
            pass


def test_openai_retries_honour_retry_after(tmp_path):
    port = h.free_port()
    proc = subprocess.Popen([h.BIN, "mock-llm", "--port", str(port), "--fault-429", "0.5", "--retry-after", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        h.wait_http(f"http://127.0.0.1:{port}/healthz")
        client = oa(f"http://127.0.0.1:{port}", max_retries=8)
        for i in range(10):
            r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"q{i}"}])
            assert r.choices[0].message.content
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_anthropic_message(mock_url):
    m = an(mock_url).messages.create(model="claude-sonnet-4-5", max_tokens=100, system="Be brief.", messages=[{"role": "user", "content": "Hello"}])
    assert m.id.startswith("msg_") and m.type == "message" and m.role == "assistant"
    assert m.content[0].type == "text" and m.content[0].text
    assert m.stop_reason in ("end_turn", "max_tokens")
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0
    assert m.usage.cache_read_input_tokens == 0
    long = an(mock_url).messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "token " * 3000}])
    assert long.usage.cache_read_input_tokens > 0
    assert long.stop_reason == "max_tokens"


def test_anthropic_stream_event_sequence(mock_url):
    with an(mock_url).messages.stream(model="claude-haiku-4-5", max_tokens=200, messages=[{"role": "user", "content": "Stream"}]) as s:
        types = [e.type for e in s]
        final = s.get_final_message()
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert "content_block_start" in types and "content_block_stop" in types and "message_delta" in types
    assert final.content[0].text and final.usage.output_tokens > 0
    raw = an(mock_url).messages.create(model="claude-haiku-4-5", max_tokens=200, messages=[{"role": "user", "content": "Stream"}], stream=True)
    events = [e.type for e in raw]
    assert events[:3] == ["message_start", "content_block_start", "content_block_delta"]


def test_anthropic_tool_use(mock_url):
    m = an(mock_url).messages.create(model="claude-sonnet-4-5", max_tokens=300, tools=WEATHER_AN, messages=[{"role": "user", "content": "Weather in Lisbon?"}])
    assert m.stop_reason == "tool_use"
    block = [b for b in m.content if b.type == "tool_use"][0]
    assert block.name == "get_weather" and isinstance(block.input["days"], int)
    with an(mock_url).messages.stream(model="claude-sonnet-4-5", max_tokens=300, tools=WEATHER_AN, messages=[{"role": "user", "content": "Weather in Lisbon?"}]) as s:
        final = s.get_final_message()
    tool = [b for b in final.content if b.type == "tool_use"][0]
    assert tool.input == block.input
    follow = an(mock_url).messages.create(model="claude-sonnet-4-5", max_tokens=300, tools=WEATHER_AN, messages=[
        {"role": "user", "content": "Weather in Lisbon?"},
        {"role": "assistant", "content": [b.model_dump() for b in m.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}]}])
    assert follow.stop_reason in ("end_turn", "max_tokens") and follow.content[0].type == "text"


def test_anthropic_faults(mock_url):
    with pytest.raises(anthropic.APIStatusError) as e:
        an(mock_url, default_headers={"x-mock-fault": "529"}).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 529
    assert e.value.body["error"]["type"] == "overloaded_error"
    with pytest.raises(anthropic.RateLimitError):
        an(mock_url, default_headers={"x-mock-fault": "429"}).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError) as bad:
        an(mock_url).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "system", "content": "x"}])
    assert "role" in str(bad.value)
    with pytest.raises(Exception):
        with an(mock_url, default_headers={"x-mock-fault": "cut"}).messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "x"}]) as s:
            s.get_final_message()
