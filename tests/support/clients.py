"""The gateway the client-SDK tests share: OpenAI-compatible, Anthropic-native and embedding fakes.

- ``cheap`` / ``strong``: OpenAI-compatible fakes behind the ``chat`` policy (``router-chat``);
- ``native``: an OpenAI-compatible fake that declares ``responses`` (``/v1/responses`` passes through);
- ``claude``: a fake of ``kind: anthropic`` (``/v1/messages`` goes to it natively, chat through
  translation), also first in the ``claude-first`` policy;
- ``embedder``: declares ``embeddings``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.procs import FakeUpstream, Gateway, upstream_entry


@dataclass
class Setup:
    gw: Gateway
    cheap: FakeUpstream
    strong: FakeUpstream
    native: FakeUpstream
    claude: FakeUpstream
    embedder: FakeUpstream


def config(cheap, strong, native, claude, embedder, embedder_name: str = "embedder", **server) -> dict:
    caps = ["streaming", "tools", "json_mode", "vision"]
    return {
        "server": {"responses_store_size": 50, **server},
        "upstreams": {
            "cheap": upstream_entry(cheap, input_price=0.15, output_price=0.6, capabilities=caps),
            "strong": upstream_entry(strong, input_price=2.5, output_price=10.0, capabilities=caps),
            "native": upstream_entry(native, input_price=1.0, output_price=4.0, capabilities=[*caps, "responses"]),
            "claude": upstream_entry(
                claude,
                kind="anthropic",
                api_key="os.environ/FAKE_ANTHROPIC_KEY",
                input_price=3.0,
                output_price=15.0,
                capabilities=caps,
            ),
            embedder_name: upstream_entry(embedder, input_price=0.02, output_price=None, capabilities=["embeddings"]),
        },
        "policies": {
            "chat": {"aliases": ["auto"], "candidates": ["cheap", "strong"], "objective": {"threshold": 0.5}},
            "claude-first": {"candidates": ["claude", "cheap"], "objective": {"threshold": 0.5}},
        },
    }


def start(gateway, fake_upstream, env: dict | None = None, embedder_name: str = "embedder", **server) -> Setup:
    """Start the five fakes and a gateway over them (``gateway`` / ``fake_upstream``: the conftest fixtures)."""
    fakes = [fake_upstream(m) for m in ("cheap-v1", "strong-v1", "native-v1", "claude-x", "embed-v1")]
    cfg = config(*fakes, embedder_name=embedder_name, **server)
    gw = gateway(cfg, env={"FAKE_ANTHROPIC_KEY": "sk-ant-fake", **(env or {})})
    return Setup(gw, *fakes)
