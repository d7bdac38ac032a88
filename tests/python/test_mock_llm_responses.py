"""OpenAI's Responses API and embeddings of `evalforge mock-llm`, checked with the official openai client."""
import openai
import pytest

from test_mock_llm_clients import fault, mock_llm, oa


@pytest.fixture(scope="module")
def mock_url():
    with mock_llm("--seed", "11", "--latency", "uniform:1-5") as url:
        yield url


def test_responses_create(mock_url):
    r = oa(mock_url).responses.create(model="gpt-4.1-mini", input="Hello there", instructions="Be brief", max_output_tokens=60)
    assert r.id.startswith("resp_")
    assert r.object == "response" and r.status in ("completed", "incomplete")
    assert r.model == "gpt-4.1-mini"
    assert r.output_text  # the client's own join of output_text parts
    assert r.output[0].type == "message" and r.output[0].role == "assistant"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.instructions == "Be brief"


def test_responses_input_items(mock_url):
    r = oa(mock_url).responses.create(model="gpt-4o", input=[
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    ])
    assert r.output_text


def test_responses_same_answer_streamed(mock_url):
    client = oa(mock_url)
    plain = client.responses.create(model="gpt-4o", input="same question")
    events = list(client.responses.create(model="gpt-4o", input="same question", stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert "response.output_text.delta" in types and "response.output_text.done" in types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == plain.output_text
    final = events[-1].response
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.output_text == plain.output_text


def test_responses_stream_helper(mock_url):
    with oa(mock_url).responses.stream(model="gpt-4o-mini", input="hi") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text and final.usage.input_tokens > 0


def test_responses_max_output_tokens_incomplete(mock_url):
    r = oa(mock_url).responses.create(model="gpt-4o", input="write a lot", max_output_tokens=2)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens == 2


def test_responses_faults(mock_url):
    with pytest.raises(openai.RateLimitError):
        oa(mock_url, **fault("429")).responses.create(model="gpt-4o", input="x")
    with pytest.raises(openai.BadRequestError) as e:
        oa(mock_url).responses.create(model="gpt-4o", input=[])
    assert "input" in str(e.value)


def test_embeddings_float_and_base64(mock_url):
    client = oa(mock_url)
    # The client asks for base64 by default and decodes it; ask for floats explicitly too.
    default = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], dimensions=16)
    floats = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], dimensions=16, encoding_format="float")
    assert [d.index for d in default.data] == [0, 1]
    assert len(default.data[0].embedding) == 16
    for a, b in zip(default.data[0].embedding, floats.data[0].embedding):
        assert abs(a - b) < 1e-6
    norm = sum(x * x for x in floats.data[1].embedding)
    assert abs(norm - 1) < 1e-4
    assert default.usage.prompt_tokens > 0 and default.usage.total_tokens == default.usage.prompt_tokens
    assert default.model == "text-embedding-3-small"


def test_embeddings_bad_input(mock_url):
    with pytest.raises(openai.BadRequestError):
        oa(mock_url).embeddings.create(model="text-embedding-3-small", input="x", dimensions=0)
