"""The Responses, Messages and embeddings ingresses: what they send upstream, natively or as chat."""

from __future__ import annotations

import orjson
import pytest

from gateway.errors import APIError
from gateway.ingress.embeddings import EmbeddingsIngress, _pooled
from gateway.ingress.messages import MessagesIngress
from gateway.ingress.responses import ResponsesIngress
from gateway.pipeline.body import BodyFor
from gateway.policy.schema import Server
from gateway.upstream.client import UpstreamClient
from gateway.upstream.config import Upstream
from gateway.upstream.forward import NativeBody

SERVER = Server()
OPENAI = UpstreamClient("gpt", Upstream(base_url="http://x/v1", model="gpt-x"))
NATIVE = UpstreamClient("gpt-r", Upstream(base_url="http://x/v1", model="gpt-r", capabilities=["responses"]))
CLAUDE = UpstreamClient("claude", Upstream(kind="anthropic", base_url="http://x/v1", model="claude-x"))
EMBED = UpstreamClient("emb", Upstream(base_url="http://x/v1", model="emb-x", capabilities=["embeddings"]))


def test_responses_request_is_chat_for_openai_upstreams_and_native_for_responses_ones():
    chat = ResponsesIngress().parse(
        {"model": "auto", "input": "hi", "instructions": "sys", "stream": True, "shunter": {"policy": "p"}}, SERVER
    )
    body = BodyFor(chat.body, chat.stream, None, chat.native)
    sent = body(OPENAI)
    assert sent["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]
    assert sent["model"] == "gpt-x" and sent["stream_options"] == {"include_usage": True} and "shunter" not in sent
    native = body(NATIVE)
    assert isinstance(native, NativeBody) and native.path == "/responses"
    assert native.body["model"] == "gpt-r" and native.body["store"] is False and "shunter" not in native.body
    assert native.body["input"] == [{"type": "message", "role": "user", "content": "hi"}]
    assert chat.req.model == "auto" and chat.req.shunter.policy == "p"  # routed by the chat fields


def test_messages_request_is_native_for_anthropic_upstreams_only():
    data = {"model": "auto", "max_tokens": 9, "messages": [{"role": "user", "content": "q"}], "top_k": 3}
    chat = MessagesIngress().parse(data, SERVER)
    body = BodyFor(chat.body, chat.stream, None, chat.native)
    native = body(CLAUDE)
    assert isinstance(native, NativeBody) and native.path == "/messages"
    assert native.body == {**data, "model": "claude-x"}
    assert body(OPENAI)["messages"] == [{"role": "user", "content": "q"}]


def test_messages_errors_are_anthropic_shaped():
    with pytest.raises(APIError) as e:
        MessagesIngress().parse({"model": "auto", "messages": [{"role": "user", "content": "q"}]}, SERVER)
    body = orjson.loads(MessagesIngress().error(e.value).body)
    assert body == {"type": "error", "error": {"type": "invalid_request_error", "message": e.value.message}}
    assert "max_tokens" in e.value.message


@pytest.mark.parametrize(
    "bad",
    [
        {"model": "m", "input": [{"type": "message", "role": "user", "content": 7}]},
        {"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": 3}]},
    ],
)
def test_unreadable_shapes_are_400_not_500(bad):
    with pytest.raises(APIError) as e:
        ResponsesIngress().parse(bad, SERVER)
    assert e.value.status == 400


def test_embeddings_go_natively_and_per_token_vectors_are_pooled():
    chat = EmbeddingsIngress().parse({"model": "emb", "input": ["a", "b"], "shunter": {"policy": "x"}}, SERVER)
    native = BodyFor(chat.body, chat.stream, None, chat.native)(EMBED)
    assert isinstance(native, NativeBody) and native.body == {"model": "emb-x", "input": ["a", "b"]}
    assert _pooled([[1.0, 2.0], [3.0, 4.0]]) == [2.0, 3.0]
    assert _pooled([1.0, 2.0]) == [1.0, 2.0] and _pooled("QUJD") == "QUJD"
