"""Serve-time expected cost per request from a router's router.json (numpy-free, stdlib)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .decision import expected_cost


def expected_costs(
    meta: Mapping[str, Any],
    prompt_tokens: int,
    prices: Mapping[str, Mapping[str, float]] | None = None,
    models: list[str] | None = None,
) -> dict[str, float]:
    """USD per request for each model.

    With a price (``{"input_per_m", "output_per_m"}``, USD per million tokens; from
    ``prices`` or router.json ``prices``): prompt tokens x input price + router.json
    ``typical_output_tokens`` x output price (256 output tokens when unknown). Otherwise
    router.json ``typical_cost_usd`` (the mean observed cost in training data), else 0.
    """
    prices = {**(meta.get("prices") or {}), **(prices or {})}
    out_tok = meta.get("typical_output_tokens") or {}
    typical = meta.get("typical_cost_usd") or {}
    res = {}
    for m in models or list(meta["models"]):
        p = prices.get(m)
        if p:
            res[m] = expected_cost(
                prompt_tokens, float(p["input_per_m"]), float(p["output_per_m"]), float(out_tok.get(m, 256))
            )
        else:
            res[m] = float(typical.get(m, 0.0))
    return res
