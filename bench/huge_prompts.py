"""Huge prompts must not stall other requests: pass-through latency while clients send ~1 MB prompts.

Starts the fake upstream and ``shunter serve`` with a learned policy (so the encoder, and its
tokenizer, is loaded), then measures the latency of small pass-through requests (``model: fake``)
twice: alone, and while ``--huge-clients`` clients keep sending ~1 MB prompts to the learned
policy (each is refused, 400, once its tokens are counted: it is longer than every context
window; that count is what used to run on the event loop for seconds). Reports medians and the ratio.

    python bench/huge_prompts.py --requests 200 --huge-clients 4 --out bench/results/huge_prompts.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench import procs
from bench.router_artifact import router_for_bench


def _small(client: httpx.Client, url: str, n: int, failed: list[str]) -> list[float]:
    """Latencies of ``n`` small pass-through requests (failures count with their latency, and in ``failed``)."""
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        try:
            r = client.post(url, json={"model": "fake", "messages": [{"role": "user", "content": f"small {i}"}]})
            if r.status_code != 200:
                failed.append(f"{r.status_code}: {r.text[:120]}")
        except httpx.HTTPError as exc:
            failed.append(repr(exc))
        out.append(time.perf_counter() - t0)
    return out


def _huge(url: str, stop: threading.Event, sent: list[int], chars: int) -> None:
    text = ("The quick brown fox jumps over the lazy dog, again and again. " * (chars // 60 + 1))[:chars]
    body = json.dumps({"model": "router-learned", "messages": [{"role": "user", "content": text}]}).encode()
    with httpx.Client(timeout=300) as c:
        while not stop.is_set():
            try:
                c.post(url, content=body, headers={"content-type": "application/json"})
            except httpx.HTTPError:
                pass
            sent.append(1)


def run(requests: int, huge_clients: int, chars: int, workdir: Path) -> dict:
    router, router_desc = router_for_bench(workdir)
    up = procs.start_fake(workdir)
    sw = procs.start_shunter(procs.shunter_config(up, workdir, router), workdir)
    url = f"{sw.url}/v1/chat/completions"
    try:
        with httpx.Client(timeout=300) as c:
            failed: list[str] = []
            _small(c, url, 20, failed)  # warm up
            alone = _small(c, url, requests, failed)
            stop, sent = threading.Event(), []
            threads = [threading.Thread(target=_huge, args=(url, stop, sent, chars)) for _ in range(huge_clients)]
            for t in threads:
                t.start()
            while len(sent) < huge_clients:  # every huge client has had one answer: the load is on
                time.sleep(0.05)
            loaded = _small(c, url, requests, failed)
            stop.set()
            for t in threads:
                t.join()
    finally:
        sw.stop()
        up.stop()
    p50_alone, p50_loaded = statistics.median(alone), statistics.median(loaded)
    return {
        "router": router_desc,
        "requests": requests,
        "huge_clients": huge_clients,
        "huge_prompt_chars": chars,
        "huge_requests_answered": len(sent),
        "passthrough_p50_ms_alone": round(p50_alone * 1000, 2),
        "passthrough_p50_ms_with_huge_prompts": round(p50_loaded * 1000, 2),
        "passthrough_p90_ms_with_huge_prompts": round(sorted(loaded)[int(0.9 * len(loaded))] * 1000, 2),
        "ratio": round(p50_loaded / p50_alone, 2),
        "small_requests_failed": len(failed),
        "failures": failed[:3],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--huge-clients", type=int, default=4)
    ap.add_argument("--chars", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    rep = run(a.requests, a.huge_clients, a.chars, Path(tempfile.mkdtemp(prefix="shunter-huge-")))
    text = json.dumps(rep, indent=2)
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
