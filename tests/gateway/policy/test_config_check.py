"""``shunter config check``: errors name the file, line, column and field, in plain words."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

GOOD = """\
# yaml-language-server: $schema=./schema.json
server:
  default_policy: chat
upstreams:
  gpt-4o-mini:
    base_url: https://api.openai.com/v1
    input_price: 0.15
    output_price: 0.6
  gpt-4o:
    base_url: https://api.openai.com/v1
    input_price: 2.5
    output_price: 10
policies:
  chat:
    candidates:
    - gpt-4o-mini
    - gpt-4o
"""


def check(tmp_path: Path, text: str, name: str = "config/default.yaml") -> subprocess.CompletedProcess:
    f = tmp_path / name
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "gateway", "config", "check", name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_good_file_passes(tmp_path):
    r = check(tmp_path, GOOD)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "config/default.yaml: ok (2 upstreams, 1 policy)"


EXAMPLE = """\
# yaml-language-server: $schema=./schema.json
upstreams:
  gpt-4o-mini:
    base_url: https://api.openai.com/v1
    api_key: os.environ/OPENAI_API_KEY
  gpt-4o:
    base_url: https://api.openai.com/v1
    api_key: os.environ/OPENAI_API_KEY
policies:
  chat:
    candidates:
    - gpt-4o-mini
    - gpt-4o
    - gpt4
"""


def test_unknown_upstream_exact_message(tmp_path):
    """The example from the issue, byte for byte."""
    r = check(tmp_path, EXAMPLE)
    assert r.returncode == 1
    assert (
        r.stderr.strip()
        == "config/default.yaml:14:5 policies.chat.candidates[2]: unknown upstream 'gpt4' (known: gpt-4o, gpt-4o-mini)"
    )


@pytest.mark.parametrize(
    "edit, expected",
    [
        # a typo in a field name
        (
            ("    candidates:\n", "    candidate:\n"),
            "config/default.yaml:15:5 policies.chat.candidate: unknown field 'candidate' (did you mean 'candidates'?)",
        ),
        # a literal secret
        (
            ("    input_price: 0.15\n", "    api_key: sk-123\n    input_price: 0.15\n"),
            "config/default.yaml:7:14 upstreams.gpt-4o-mini.api_key: must be an environment reference like 'os.environ/OPENAI_API_KEY', not a literal key",
        ),
        # a wrong type
        (
            ("    output_price: 10\n", "    output_price: ten\n"),
            "config/default.yaml:12:19 upstreams.gpt-4o.output_price: Input should be a valid number, unable to parse string as a number",
        ),
        # two objectives
        (
            ("    - gpt-4o\n", "    - gpt-4o\n    objective: {threshold: 0.5, cost_weight: 1}\n"),
            "config/default.yaml:18:5 policies.chat.objective: set exactly one of threshold, cost_weight, target_strong_share, max_cost_per_request (got threshold, cost_weight)",
        ),
        # an unknown default policy
        (
            ("  default_policy: chat\n", "  default_policy: chatt\n"),
            "config/default.yaml:3:19 server.default_policy: unknown policy 'chatt' (known: chat)",
        ),
        # a missing router artifact
        (
            ("    - gpt-4o\n", "    - gpt-4o\n    router: {path: nowhere/mf}\n"),
            "config/default.yaml:18:20 policies.chat.router.path: router artifact not found at 'config/nowhere/mf' (needs router.onnx and router.json)",
        ),
        # a calibrated share without a router to calibrate it
        (
            ("    - gpt-4o\n", "    - gpt-4o\n    objective: {target_strong_share: 0.3}\n"),
            "config/default.yaml:18:38 policies.chat.objective.target_strong_share: target_strong_share needs a pair router (its stored calibration); without a router use threshold",
        ),
        # a cost objective without prices
        (
            ("    input_price: 2.5\n    output_price: 10\n", ""),
            "config/default.yaml:9:3 upstreams.gpt-4o: objective cost_weight of policy 'chat' needs input_price and output_price",
        ),
        # YAML syntax
        (
            ("  chat:\n", "  chat: [\n"),
            "config/default.yaml:14:9 YAML syntax error: the '[' that opens here is not closed",
        ),
        # a rule naming an unknown model and a bad regex
        (
            ("    - gpt-4o\n", "    - gpt-4o\n    rules:\n    - {name: r, keywords: [x], model: gpt5}\n"),
            "config/default.yaml:19:39 policies.chat.rules[0].model: unknown upstream 'gpt5' (known: gpt-4o, gpt-4o-mini)",
        ),
        (
            ("    - gpt-4o\n", "    - gpt-4o\n    rules:\n    - {name: r, regex: '(a', model: gpt-4o}\n"),
            "config/default.yaml:19:24 policies.chat.rules[0].regex: invalid regular expression: missing ), unterminated subpattern at position 0",
        ),
        # judged shadow sampling: an unknown judge, one model to compare, a model listed twice
        (
            (
                "    - gpt-4o\n",
                "    - gpt-4o\n    learning:\n      shadow: {rate: 0.05, budget_usd_per_day: 5, judge: gpt5}\n",
            ),
            "config/default.yaml:19:58 policies.chat.learning.shadow.judge: unknown upstream 'gpt5' (known: gpt-4o, gpt-4o-mini)",
        ),
        (
            (
                "    - gpt-4o\n",
                "    - gpt-4o\n    learning:\n      shadow: {rate: 0.05, budget_usd_per_day: 5, judge: gpt-4o, compare: [gpt-4o]}\n",
            ),
            "config/default.yaml:19:66 policies.chat.learning.shadow.compare: a shadow call answers with another model than the served one: compare must name at least two models (has: gpt-4o)",
        ),
        (
            (
                "    - gpt-4o\n",
                "    - gpt-4o\n    learning:\n      shadow: {rate: 0.05, budget_usd_per_day: 5, judge: gpt-4o, compare: [gpt-4o-mini, gpt-4o, gpt-4o]}\n",
            ),
            "config/default.yaml:19:97 policies.chat.learning.shadow.compare[2]: 'gpt-4o' is listed twice",
        ),
        # semantic route without utterances
        (
            ("    - gpt-4o\n", "    - gpt-4o\n    semantic_routes:\n    - name: code\n      model: gpt-4o\n"),
            "config/default.yaml:19:5 policies.chat.semantic_routes[0].utterances: Field required",
        ),
    ],
)
def test_error_messages(tmp_path, edit, expected):
    old, new = edit
    text = GOOD
    if "input_price: 2.5" in old:
        text = text + "    objective: {cost_weight: 1}\n"
    assert old in text
    r = check(tmp_path, text.replace(old, new, 1))
    assert r.returncode == 1
    assert r.stderr.strip() == expected


def test_one_typo_one_error(tmp_path):
    """A misspelt candidate is reported once: not also as model_map and reference_model errors."""
    text = (ROOT / "config" / "openai.yaml").read_text().replace("../routers/artifacts/", "routers/artifacts/")
    text = text.replace("candidates: [gpt-4o-mini, gpt-4o]", "candidates: [gpt-4o-mini, gpt4o]", 1)
    r = check(tmp_path, text)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "config/default.yaml:34:31 policies.chat.candidates[1]: unknown upstream 'gpt4o' (known: gpt-4o, gpt-4o-mini)"
    ]


def test_misspelt_optional_field_suggests_the_right_one(tmp_path):
    r = check(tmp_path, GOOD + "    fallback: [gpt-4o]\n")
    assert r.returncode == 1
    assert r.stderr.strip() == (
        "config/default.yaml:18:5 policies.chat.fallback: unknown field 'fallback' (did you mean 'fallbacks'?)"
    )


@pytest.mark.parametrize(
    "edit, expected",
    [
        # a key without its ':' (PyYAML notices on the next line)
        (
            ("    candidates:\n", "    candidates\n    fallbacks: []\n    aliases:\n"),
            "config/default.yaml:15:5 YAML syntax error: 'candidates' needs a ':' after its key",
        ),
        # a key indented further than its siblings, after a plain value
        (
            ("    output_price: 0.6\n", "    output_price: 0.6\n      context_window: 8000\n"),
            "config/default.yaml:9:7 YAML syntax error: this key is indented further than the keys above it",
        ),
        # a key indented less than its siblings
        (
            ("    output_price: 0.6\n", "   output_price: 0.6\n"),
            "config/default.yaml:8:4 YAML syntax error: a key at an indentation that matches no key above it "
            "(check this line's indentation, and the line before)",
        ),
        # an unclosed bracket and an unclosed quote are reported where they open
        (
            ("  default_policy: chat\n", "  default_policy: [chat\n"),
            "config/default.yaml:3:19 YAML syntax error: the '[' that opens here is not closed",
        ),
        (
            ("  default_policy: chat\n", '  default_policy: "chat\n'),
            "config/default.yaml:3:19 YAML syntax error: the quote that opens here is not closed",
        ),
        # a list item without the space after '-'
        (
            ("    - gpt-4o-mini\n", "    -gpt-4o-mini\n"),
            "config/default.yaml:16:5 YAML syntax error: the key that starts here has no ':' (or '- ' lacks its space)",
        ),
    ],
)
def test_yaml_errors_point_at_the_mistake(tmp_path, edit, expected):
    old, new = edit
    assert old in GOOD
    r = check(tmp_path, GOOD.replace(old, new, 1))
    assert r.returncode == 1
    assert r.stderr.strip() == expected


def test_policy_loop_is_rejected(tmp_path):
    text = GOOD + (
        "    rules:\n    - {name: a, keywords: [x], policy: other}\n"
        "  other:\n    candidates: [gpt-4o, gpt-4o-mini]\n    rules:\n    - {name: b, keywords: [y], policy: chat}\n"
    )
    r = check(tmp_path, text)
    assert r.returncode == 1
    assert "policies hand requests to each other in a loop: chat -> other -> chat" in r.stderr


def test_schema_command_matches_committed_schema():
    r = subprocess.run(
        [sys.executable, "-m", "gateway", "config", "schema"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    committed = (ROOT / "config" / "schema.json").read_text()
    assert json.loads(r.stdout) == json.loads(committed)
    assert r.stdout == committed, "config/schema.json is stale: run `shunter config schema -o config/schema.json`"


def test_examples_start_with_schema_line():
    for f in sorted((ROOT / "config").glob("*.yaml")):
        assert f.read_text().startswith("# yaml-language-server: $schema=./schema.json\n"), f
