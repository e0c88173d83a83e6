"""Prompt encoder tiers.

- ``fast``: :class:`routers.encoders.static.StaticEncoder`, a static token-embedding table
  (numpy + tokenizers; ~0.05 ms per prompt), trained to land in MiniLM's 384-d space;
- ``accurate``: :class:`routers.encoder.Encoder`, all-MiniLM-L6-v2 int8 on onnxruntime.

Both return L2-normalised (n, 384) float32 arrays, so a router can score either; a policy's
``encoder: fast | accurate | tiered`` picks which (``tiered``: fast first, MiniLM only when the
decision is close; see ``docs/encoders.md``).
"""

from __future__ import annotations

from typing import Literal

Tier = Literal["fast", "accurate", "tiered"]
TIERS: tuple[str, ...] = ("fast", "accurate", "tiered")
