"""The official openai and anthropic Python clients against `evalforge mock-llm`, unchanged.

Starts the binary from EVALFORGE_BIN (default .build/debug/evalforge) on free loopback ports."""
import contextlib
import json
import subprocess
import time

import anthropic
import openai
import pytest

import evalforge_harness as h


@contextlib.contextmanager
def mock_llm(*args):
    port = h.free_port()
    proc = subprocess.Popen([h.BIN, "mock-llm", "--port", str(port), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        h.wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def mock_url():
    with mock_llm("--seed", "7", "--latency", "uniform:1-5") as url:
        yield url


def oa(url, **kw):
    return openai.OpenAI(base_url=url + "/v1", api_key="test", max_retries=kw.pop("max_retries", 0), **kw)


def an(url, **kw):
    return anthropic.Anthropic(base_url=url, api_key="test", max_retries=kw.pop("max_retries", 0), **kw)


def fault(kind):
    return {"default_headers": {"x-mock-fault": kind}}


WEATHER_OA = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city", "days"]}}}]
WEATHER_AN = [{"name": "get_weather", "description": "weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city", "days"]}}]
USER = [{"role": "user", "content": "x"}]


def test_openai_chat(mock_url):
    r = oa(mock_url).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello there"}], max_tokens=50)
    assert r.id.startswith("chatcmpl-")
    assert r.object == "chat.completion"
    assert r.model == "gpt-4o-mini"
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    assert r.usage.completion_tokens_details.reasoning_tokens == 0
    # Deterministic for a seed.
    again = oa(mock_url).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello there"}], max_tokens=50)
    assert again.choices[0].message.content == r.choices[0].message.content and again.id == r.id
    other = oa(mock_url, default_headers={"x-mock-seed": "8"}).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello there"}], max_tokens=50)
    assert other.choices[0].message.content != r.choices[0].message.content
    short = oa(mock_url).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello there"}], max_completion_tokens=3)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3


def test_openai_models(mock_url):
    assert "gpt-4o" in [m.id for m in oa(mock_url).models.list()]


def test_openai_cached_and_reasoning_tokens(mock_url):
    long = "word " * 3000
    r = oa(mock_url).chat.completions.create(model="o3-mini", messages=[{"role": "user", "content": long}])
    assert r.usage.prompt_tokens >= 1024
    assert r.usage.prompt_tokens_details.cached_tokens > 0 and r.usage.prompt_tokens_details.cached_tokens % 128 == 0
    assert r.usage.completion_tokens_details.reasoning_tokens > 0
    assert r.usage.completion_tokens > r.usage.completion_tokens_details.reasoning_tokens
    forced = oa(mock_url, default_headers={"x-mock-cached-tokens": "3"}).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi there"}])
    assert forced.usage.prompt_tokens_details.cached_tokens == 3


def test_openai_stream_with_usage(mock_url):
    stream = oa(mock_url).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Stream please"}], stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len([c for c in chunks if c.choices and c.choices[0].delta.content])
    non_stream = oa(mock_url).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Stream please"}])
    assert non_stream.choices[0].message.content == text
    # The streaming helper assembles the same answer.
    with oa(mock_url).chat.completions.stream(model="gpt-4o", messages=[{"role": "user", "content": "Stream please"}]) as s:
        assert s.get_final_completion().choices[0].message.content == text


def test_openai_async_stream(mock_url):
    import asyncio

    async def main():
        client = openai.AsyncOpenAI(base_url=mock_url + "/v1", api_key="test", max_retries=0)
        stream = await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "async"}], stream=True)
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await client.close()
        return "".join(parts)

    assert asyncio.run(main())


def test_openai_tool_calls(mock_url):
    r = oa(mock_url).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=WEATHER_OA)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert isinstance(args["city"], str) and isinstance(args["days"], int)
    # Streaming tool call, reassembled by the client library's helper.
    with oa(mock_url).chat.completions.stream(model="gpt-4o", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=WEATHER_OA) as s:
        final = s.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert json.loads(final.choices[0].message.tool_calls[0].function.arguments) == args
    # After the tool result, a text answer.
    r2 = oa(mock_url).chat.completions.create(model="gpt-4o", tools=WEATHER_OA, messages=[
        {"role": "user", "content": "Weather in Paris?"}, r.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"}])
    assert r2.choices[0].message.content and not r2.choices[0].message.tool_calls
    # tool_choice "none" answers with text.
    r3 = oa(mock_url).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=WEATHER_OA, tool_choice="none")
    assert r3.choices[0].message.content and not r3.choices[0].message.tool_calls


def test_openai_json_mode_judge(mock_url):
    r = oa(mock_url).chat.completions.create(model="gpt-4o-mini", response_format={"type": "json_object"}, messages=[
        {"role": "system", "content": "You are a judge. Return JSON with a score between 0 and 1."},
        {"role": "user", "content": "Question: 2+2? Answer: 4"}])
    verdict = json.loads(r.choices[0].message.content)
    assert 0 <= verdict["score"] <= 1 and verdict["label"] in ("pass", "partial", "fail") and verdict["explanation"]


def test_openai_faults(mock_url):
    with pytest.raises(openai.RateLimitError) as e:
        oa(mock_url, **fault("429")).chat.completions.create(model="gpt-4o", messages=USER)
    assert e.value.response.headers["retry-after"] == "1"
    assert e.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError) as e:
        oa(mock_url, **fault("500")).chat.completions.create(model="gpt-4o", messages=USER)
    assert e.value.status_code == 500
    with pytest.raises(openai.InternalServerError) as e:
        oa(mock_url, **fault("529")).chat.completions.create(model="gpt-4o", messages=USER)
    assert e.value.status_code == 503 and e.value.response.headers["retry-after"] == "1"
    # A stream cut half-way: the client raises instead of returning a truncated answer.
    with pytest.raises(openai.APIError):
        for _ in oa(mock_url, **fault("cut")).chat.completions.create(model="gpt-4o", messages=USER, stream=True):
            pass
    with pytest.raises(openai.APIConnectionError):
        oa(mock_url, **fault("cut")).chat.completions.create(model="gpt-4o", messages=USER)
    # Malformed bodies: the client cannot parse them.
    with pytest.raises(Exception):
        oa(mock_url, **fault("malformed")).chat.completions.create(model="gpt-4o", messages=USER)
    with pytest.raises(Exception):
        for _ in oa(mock_url, **fault("malformed")).chat.completions.create(model="gpt-4o", messages=USER, stream=True):
            pass


def test_openai_bad_request_names_the_field(mock_url):
    with pytest.raises(openai.BadRequestError) as e:
        oa(mock_url).chat.completions.create(model="gpt-4o", messages=[])
    assert "messages" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        oa(mock_url).chat.completions.create(model="gpt-4o", messages=USER, max_tokens=0)
    assert "max_tokens" in str(e.value)


def test_anthropic_message(mock_url):
    m = an(mock_url).messages.create(model="claude-sonnet-4-5", max_tokens=100, system="Be brief.", messages=[{"role": "user", "content": "Hello"}])
    assert m.id.startswith("msg_") and m.type == "message" and m.role == "assistant"
    assert m.content[0].type == "text" and m.content[0].text
    assert m.stop_reason in ("end_turn", "max_tokens")
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0
    assert m.usage.cache_read_input_tokens == 0 and m.usage.cache_creation_input_tokens == 0
    again = an(mock_url).messages.create(model="claude-sonnet-4-5", max_tokens=100, system="Be brief.", messages=[{"role": "user", "content": "Hello"}])
    assert again.content[0].text == m.content[0].text and again.id == m.id
    long = an(mock_url).messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "token " * 3000}])
    assert long.usage.cache_read_input_tokens > 0 and long.usage.cache_read_input_tokens % 128 == 0
    assert long.stop_reason == "max_tokens" and long.usage.output_tokens == 10


def test_anthropic_stream_event_sequence(mock_url):
    with an(mock_url).messages.stream(model="claude-haiku-4-5", max_tokens=200, messages=[{"role": "user", "content": "Stream"}]) as s:
        types = [e.type for e in s]
        final = s.get_final_message()
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert "content_block_start" in types and "content_block_stop" in types and "message_delta" in types
    assert final.content[0].text and final.usage.output_tokens > 0
    raw = an(mock_url).messages.create(model="claude-haiku-4-5", max_tokens=200, messages=[{"role": "user", "content": "Stream"}], stream=True)
    events = list(raw)
    names = [e.type for e in events]
    assert names[:2] == ["message_start", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[2:-3]) == {"content_block_delta"}
    assert events[0].message.usage.input_tokens > 0
    assert events[-2].delta.stop_reason == "end_turn" and events[-2].usage.output_tokens == len(names[2:-3])
    whole = an(mock_url).messages.create(model="claude-haiku-4-5", max_tokens=200, messages=[{"role": "user", "content": "Stream"}])
    assert whole.content[0].text == final.content[0].text


def test_anthropic_tool_use(mock_url):
    m = an(mock_url).messages.create(model="claude-sonnet-4-5", max_tokens=300, tools=WEATHER_AN, messages=[{"role": "user", "content": "Weather in Lisbon?"}])
    assert m.stop_reason == "tool_use"
    block = [b for b in m.content if b.type == "tool_use"][0]
    assert block.id.startswith("toolu_")
    assert block.name == "get_weather" and isinstance(block.input["days"], int) and isinstance(block.input["city"], str)
    with an(mock_url).messages.stream(model="claude-sonnet-4-5", max_tokens=300, tools=WEATHER_AN, messages=[{"role": "user", "content": "Weather in Lisbon?"}]) as s:
        final = s.get_final_message()
    tool = [b for b in final.content if b.type == "tool_use"][0]
    assert tool.input == block.input and final.stop_reason == "tool_use"
    follow = an(mock_url).messages.create(model="claude-sonnet-4-5", max_tokens=300, tools=WEATHER_AN, messages=[
        {"role": "user", "content": "Weather in Lisbon?"},
        {"role": "assistant", "content": [b.model_dump() for b in m.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}]}])
    assert follow.stop_reason in ("end_turn", "max_tokens") and follow.content[0].type == "text"


def test_anthropic_json_judge(mock_url):
    m = an(mock_url).messages.create(model="claude-haiku-4-5", max_tokens=300, system="Grade the answer. Reply only with JSON containing a score from 0 to 1.",
                                     messages=[{"role": "user", "content": "Q: capital of France? A: Paris"}])
    verdict = json.loads(m.content[0].text)
    assert 0 <= verdict["score"] <= 1 and verdict["explanation"]


def test_anthropic_faults(mock_url):
    with pytest.raises(anthropic.APIStatusError) as e:
        an(mock_url, **fault("529")).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=USER)
    assert e.value.status_code == 529
    assert e.value.body["error"]["type"] == "overloaded_error"
    assert e.value.response.headers["retry-after"] == "1"
    if hasattr(anthropic, "OverloadedError"):
        assert isinstance(e.value, anthropic.OverloadedError)
    with pytest.raises(anthropic.RateLimitError) as e:
        an(mock_url, **fault("429")).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=USER)
    assert e.value.response.headers["retry-after"] == "1"
    with pytest.raises(anthropic.InternalServerError) as e:
        an(mock_url, **fault("500")).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=USER)
    assert e.value.body["error"]["type"] == "api_error"
    with pytest.raises(anthropic.BadRequestError) as bad:
        an(mock_url).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "system", "content": "x"}])
    assert "role" in str(bad.value)
    # A stream cut half-way: the SDK surfaces the transport's "incomplete body" error.
    with pytest.raises(Exception) as e:
        with an(mock_url, **fault("cut")).messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=USER) as s:
            s.get_final_message()
    assert isinstance(e.value, anthropic.APIError) or "incomplete" in str(e.value) or "closed" in str(e.value)
    with pytest.raises(anthropic.APIConnectionError):
        an(mock_url, **fault("cut")).messages.create(model="claude-haiku-4-5", max_tokens=50, messages=USER)
    with pytest.raises(Exception):
        with an(mock_url, **fault("malformed")).messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=USER) as s:
            s.get_final_message()


def test_retries_honour_retry_after():
    """With fault rates configured, the SDKs retry 429 / 529 (503) after Retry-After seconds and get through."""
    with mock_llm("--fault-429", "0.2", "--fault-529", "0.2", "--retry-after", "1") as url:
        client = oa(url, max_retries=8)
        retried = 0
        for i in range(4):
            start = time.monotonic()
            raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": f"q{i}"}])
            elapsed = time.monotonic() - start
            assert raw.parse().choices[0].message.content
            # Each retry waited the advertised second.
            assert elapsed >= 0.9 * raw.retries_taken
            retried += raw.retries_taken
        claude = an(url, max_retries=8)
        for i in range(4):
            start = time.monotonic()
            raw = claude.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": f"q{i}"}])
            elapsed = time.monotonic() - start
            assert raw.parse().content[0].text
            assert elapsed >= 0.9 * raw.retries_taken
            retried += raw.retries_taken
        assert retried > 0
