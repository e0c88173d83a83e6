"""The gateway holds no process-wide encoders: ``Services.encoders`` owns them (issue: hidden state)."""

from __future__ import annotations

import re
from pathlib import Path

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"


def test_gateway_never_uses_the_offline_encoder_singletons():
    offenders = [
        f"{p.relative_to(GATEWAY.parent)}:{n}"
        for p in GATEWAY.rglob("*.py")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\bEncoder\.default\(|\._default\b", line)
    ]
    assert offenders == []


def test_encoders_are_made_once_per_holder_and_cache_utterances():
    from gateway.runtime import Encoders

    enc = Encoders(threads=1)
    assert enc.fast() is enc.fast()
    a = enc.embed_utterances(["hello there", "what is 2+2?"])
    b = enc.embed_utterances(["what is 2+2?"])
    assert a.shape == (2, 384) and (a[1] == b[0]).all()
    assert enc.accurate() is enc.accurate() and enc.accurate_hash() == enc.accurate().encoder_hash
    assert enc.fast_hash() == enc.fast().encoder_hash
