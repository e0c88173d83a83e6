"""Every Python snippet in the README's Clients section runs, as written, against a gateway.

The snippets name ``http://127.0.0.1:8080`` (the default port) and the default config's model
names (``auto``, ``text-embedding-3-small``); the test serves those names from fake upstreams on
a free port and points the snippets at it, then runs each one as its own Python process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support.clients import Setup, start
from tests.support.paths import ROOT

SECTION = re.compile(r"^## Clients\n(.*?)^## ", re.S | re.M)
BLOCK = re.compile(r"^### (.+?)\n.*?```python\n(.*?)```", re.S | re.M)


def snippets() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = SECTION.search(text)
    assert section, "README.md has no '## Clients' section"
    return dict(BLOCK.findall(section.group(1)))


def test_readme_has_a_snippet_per_client():
    assert set(snippets()) == {
        "OpenAI chat completions",
        "OpenAI Responses API",
        "Embeddings",
        "Anthropic Messages",
        "LangChain",
    }


@pytest.fixture
def gw(gateway, fake_upstream) -> Setup:
    return start(gateway, fake_upstream, embedder_name="text-embedding-3-small")


@pytest.mark.parametrize("title", sorted(snippets()))
def test_snippet_runs(gw, title):
    code = snippets()[title].replace("http://127.0.0.1:8080", gw.gw.url)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, f"{title}:\n{proc.stderr[-3000:]}"
    assert "Echo:" in proc.stdout or title == "Embeddings", proc.stdout
    if title == "Embeddings":
        assert proc.stdout.split() == ["2", "8", "2"]
