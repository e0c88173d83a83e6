"""Small routing tables cut from ../shared/data by code, for tests that need another file layout."""

from __future__ import annotations

import csv

import numpy as np

from routers.data import load_table


def routellm_with_answers(data_dir, out, rows=40):
    """RouteLLM's GSM8K eval layout (``prompt``, one outcome column per model, then
    ``<model>_response``), written by this helper from RouterBench's ARC rows: real outcomes and
    real answers of GPT-4-1106 and Mixtral, under RouteLLM's names."""
    rb = load_table(data_dir / "routerbench/arc_challenge_train.csv", "routerbench").subset(np.arange(rows))
    pair = {
        "mistralai/Mixtral-8x7B-Instruct-v0.1": "mistralai/mixtral-8x7b-chat",
        "gpt-4-1106-preview": "gpt-4-1106-preview",
    }
    cols = list(pair) + [f"{m}_response" for m in pair]
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["prompt", *cols])
        w.writeheader()
        for i, prompt in enumerate(rb.prompts):
            row = {"prompt": prompt}
            for m, name in pair.items():
                row[m] = bool(rb.quality[i, rb.models.index(name)])
                row[f"{m}_response"] = rb.responses[name][i]
            w.writerow(row)
    return rb, pair
