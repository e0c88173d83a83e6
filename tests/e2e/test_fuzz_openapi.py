"""schemathesis against a running gateway's own OpenAPI schema: no 5xx, no crash, conforming answers.

Bounded: a fixed number of examples per operation in deterministic mode (well under a minute on
2 cores). Two runs: the schema as served, then with ``model`` pinned to names the gateway knows,
so generated bodies get past model resolution into routing, upstream calls and streaming.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.procs import upstream_entry

ADMIN = "fuzz-admin-key-0123456789"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def _st(schema: str, base: str, n: int, *extra: str) -> subprocess.CompletedProcess:
    st = Path(sys.executable).with_name("schemathesis")
    cmd = [
        str(st),
        "run",
        schema,
        "--checks",
        CHECKS,
        "-n",
        str(n),
        "--generation-deterministic",
        "--phases",
        "examples,fuzzing",
        "--request-timeout",
        "20",
        "-H",
        f"Authorization: Bearer {ADMIN}",
        "--suppress-health-check",
        "all",
        *extra,
    ]
    if not schema.startswith("http"):
        cmd += ["--url", base]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240)


def test_fuzz_the_openapi_schema(gateway, fake_upstream, tmp_path):
    a, b = fake_upstream("a"), fake_upstream("b")
    gw = gateway(
        {
            "upstreams": {"a": upstream_entry(a), "b": upstream_entry(b)},
            "policies": {"chat": {"candidates": ["a", "b"], "max_prompt_tokens": 2000}},
        },
        env={"SHUNTER_ADMIN_KEY": ADMIN},
    )
    r = _st(f"{gw.url}/openapi.json", gw.url, 25)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]

    schema = httpx.get(f"{gw.url}/openapi.json", timeout=5).json()
    known = {"type": "string", "enum": ["router-chat", "a", "b"]}
    for name in ("ChatCompletionRequest", "CompletionRequest"):
        schema["components"]["schemas"][name]["properties"]["model"] = known
        ops = schema["paths"]["/v1/chat/completions" if name.startswith("Chat") else "/v1/completions"]["post"]
        ops["requestBody"]["content"]["application/json"]["schema"] = {"$ref": f"#/components/schemas/{name}"}
    pinned = tmp_path / "pinned.json"
    pinned.write_text(json.dumps(schema))
    r = _st(str(pinned), gw.url, 80, "--include-path-regex", "^/v1/(chat/)?completions$")
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert a.stats()["requests"] + b.stats()["requests"] > 20  # the fuzzer reached the upstreams

    assert gw.proc.poll() is None  # no crash
    log = gw.output()
    assert "Traceback" not in log and "unhandled error" not in log, log[-4000:]
    assert httpx.get(f"{gw.url}/readyz", timeout=5).status_code == 200
