"""Real, varied prompts for the benchmarks, sampled from ``../shared/data``.

An equal share from each data set (MMLU questions, RouterBench's ARC/MBPP/Winogrande turns,
LLMRouter's mixed tasks), shuffled with a fixed seed. The load generator makes every request
unique by writing its counter into the prompt (``{N}``), so no cache ever answers.
"""

from __future__ import annotations

import random


def real_prompts(n: int = 600, seed: int = 0, max_chars: int = 4000) -> list[str]:
    """``n`` prompts, a third from each shared data set (fewer when the data is missing)."""
    from routers.data import default_paths, load_table

    rng = random.Random(seed)
    per = -(-n // 3)
    out: list[str] = []
    for fmt in ("routellm", "routerbench", "llmrouter"):
        path = default_paths(fmt)
        if not path.exists():
            continue
        texts = [p for p in dict.fromkeys(load_table(path, fmt).prompts) if p.strip() and len(p) <= max_chars]
        out += rng.sample(texts, min(per, len(texts)))
    rng.shuffle(out)
    return out[:n]


def unique_template(text: str) -> str:
    """The prompt with a per-request counter (``{N}``) appended: unique, otherwise unchanged."""
    return f"{text}\n(request {{N}})"
