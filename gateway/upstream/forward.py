"""Send a request to the best available candidate: retry before the first byte, then fall back.

Nothing reaches the client before the upstream has answered 200 and, for streams, sent its first
chunk; for a plain (non-streamed) call, before its whole body was read and checked against the
OpenAI schema. Until then connect errors, timeouts, 429 and 5xx, a body cut off or stalled
midway, and a body that is not an OpenAI completion (not JSON, a list, wrong types) are retried
with backoff (429 honours ``Retry-After``) and then the next-ranked candidate is tried. After the
first streamed byte the call is never retried: a failure ends the stream with an error event.

Every exit of an attempt, whatever the exception, gives the upstream's concurrency slot and the
in-flight gauge back (``Opened.aclose`` is idempotent).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway import metrics
from gateway.errors import APIError
from gateway.protocol import upstream_problem
from gateway.upstream import anthropic
from gateway.upstream.client import TransportError, UpstreamClient, UpstreamResponse, deadline

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


@dataclass
class Attempt:
    upstream: str
    error: str  # connect, timeout, status_429, status_5xx, ...
    status: int | None = None


@dataclass
class NativeBody:
    """A request already in the upstream's own format, sent to ``path`` as is (no OpenAI checks)."""

    path: str
    body: dict[str, Any]


@dataclass
class Opened:
    """An upstream call that answered 200: for streams with its first chunk, else with its checked body.

    It holds one of the upstream's concurrency slots until ``aclose`` (a plain call's is given
    back as soon as its body was read).
    """

    client: UpstreamClient
    response: UpstreamResponse | None = None
    first_chunk: bytes | None = None
    payload: dict[str, Any] | None = None
    attempts: list[Attempt] = field(default_factory=list)
    started: float = 0.0
    headers_at: float = 0.0
    closed: bool = False
    native: bool = False  # the upstream answered in the client's own format (a ``NativeBody`` call)

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self.response is not None:
                await self.response.aclose()
        finally:
            self.client.slots.release()
            metrics.INFLIGHT.labels(self.client.name).dec()


def _retry_after(resp: UpstreamResponse) -> float | None:
    v = resp.headers.get("retry-after")
    if not v:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        return None


async def _open_one(client: UpstreamClient, path: str, body: dict | NativeBody, stream: bool) -> Opened:
    """One try against one upstream. Raises ``_Fail`` for retryable problems.

    An OpenAI-form call goes through ``anthropic.prepare`` / ``anthropic.wrap`` (an Anthropic upstream
    gets a Messages call whose answer reads as chat); a ``NativeBody`` goes as it is.
    """
    cfg = client.cfg
    started = time.perf_counter()
    await client.slots.acquire()
    metrics.INFLIGHT.labels(client.name).inc()
    opened = Opened(client, started=started, native=isinstance(body, NativeBody))
    if isinstance(body, NativeBody):
        sent_path, sent = body.path, body.body
    else:
        sent_path, sent = anthropic.prepare(client, path, body)
    try:
        try:
            async with deadline(cfg.timeouts.first_byte):
                raw = await client.session.post(
                    client.url(sent_path),
                    data=orjson.dumps(sent),
                    headers=client.headers(),
                    proxy=client.proxy,
                    proxy_auth=client.proxy_auth,
                )
                resp = UpstreamResponse(raw, cfg.timeouts.idle)
                resp = opened.response = resp if opened.native else anthropic.wrap(client, resp, path)
                opened.headers_at = time.perf_counter()
                metrics.UPSTREAM_DURATION.labels(client.name).observe(opened.headers_at - started)
                if resp.status_code != 200:
                    text = await resp.aread()
                    raise _Fail(
                        "status_429" if resp.status_code == 429 else f"status_{resp.status_code // 100}xx",
                        resp.status_code,
                        text,
                        _retry_after(resp),
                        retryable=resp.status_code in RETRYABLE_STATUS or resp.status_code >= 500,
                    )
                if stream:
                    opened.first_chunk = await resp.next_chunk(cfg.timeouts.first_byte)
        except asyncio.TimeoutError:
            raise _Fail("timeout", None, b"", None, retryable=True) from None
        except TransportError:
            raise _Fail("connect", None, b"", None, retryable=True) from None
        if not stream:
            opened.payload = await _read_payload(resp, None if opened.native else path, cfg.timeouts.idle)
            await opened.aclose()
        return opened
    except BaseException:
        await opened.aclose()
        raise


async def _read_payload(resp: UpstreamResponse, path: str | None, idle: float) -> dict[str, Any]:
    """The whole body of a plain 200, checked against the OpenAI schema (``path`` None: only a JSON object)."""
    try:
        raw = await resp.aread()
    except asyncio.TimeoutError:
        raise _Fail("idle_timeout", None, b"", None, retryable=True, idle=idle) from None
    except TransportError:
        raise _Fail("body_reset", None, b"", None, retryable=True) from None
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _Fail("bad_response", 200, raw[:200], None, retryable=True, why="not JSON") from None
    if path is None:
        why = None if isinstance(payload, dict) else f"a JSON {type(payload).__name__}, not an object"
    else:
        why = upstream_problem(payload, chat=path.endswith("/chat/completions"))
    if why is not None:
        raise _Fail("bad_response", 200, raw[:200], None, retryable=True, why=why)
    return payload


class _Fail(Exception):
    def __init__(
        self,
        kind: str,
        status: int | None,
        body: bytes,
        retry_after: float | None,
        retryable: bool,
        why: str = "",
        idle: float | None = None,
    ) -> None:
        self.kind, self.status, self.body, self.retry_after, self.retryable = kind, status, body, retry_after, retryable
        self.why, self.idle = why, idle


async def open_stream(
    clients: list[UpstreamClient],
    path: str,
    make_body: Callable[[UpstreamClient], dict | NativeBody],
    stream: bool,
    policy: str | None = None,
) -> Opened:
    """Try each candidate in order (with retries) and return the first good response.

    A move to the next candidate counts in ``shunter_fallbacks_total`` under ``policy``.
    """
    attempts: list[Attempt] = []
    last: _Fail | None = None
    for i, client in enumerate(clients):
        if i > 0:
            metrics.FALLBACKS.labels(policy or "", clients[i - 1].name, client.name).inc()
        cfg = client.cfg.retry
        delay = cfg.backoff
        for n in range(cfg.attempts):
            if not client.breaker.allow():
                attempts.append(Attempt(client.name, "circuit_open"))
                break
            if n == 0:
                client.breaker.note_request()  # the retry budget counts first attempts
            try:
                opened = await _open_one(client, path, make_body(client), stream)
            except _Fail as f:
                last = f
                attempts.append(Attempt(client.name, f.kind, f.status if f.kind != "bad_response" else None))
                metrics.UPSTREAM_ERRORS.labels(client.name, f.kind).inc()
                if f.status in (401, 403):  # our credentials for this upstream: not the client's problem
                    client.breaker.failure()
                    break
                if f.kind == "status_429" and f.retry_after:
                    client.breaker.cool_down(f.retry_after)  # everyone skips it while it asks us to
                    if f.retry_after > cfg.max_backoff:
                        break
                if not f.retryable:
                    # The upstream refused the request itself (4xx): the client's problem, say so.
                    client.breaker.success()
                    raise _client_error(f) from None
                if f.kind != "status_429" or not f.retry_after:
                    client.breaker.failure()
                if n + 1 < cfg.attempts:
                    if not client.breaker.allow_retry():  # retry budget spent: fall back instead
                        break
                    metrics.RETRIES.labels(client.name).inc()
                    wait = min(cfg.max_backoff, f.retry_after if f.retry_after is not None else delay)
                    await asyncio.sleep(wait)
                    delay *= 2
                continue
            client.breaker.success()
            opened.attempts = attempts
            return opened
    raise _exhausted(attempts, last)


class CallFailed(Exception):
    """A ``call_once`` that gave no completion; ``kind`` as in ``shunter_upstream_errors_total``
    (``status_429``, ``status_4xx``, ``status_5xx``, ``timeout``, ``connect``, ``idle_timeout``,
    ``body_reset``, ``bad_response``)."""

    def __init__(self, kind: str, status: int | None) -> None:
        super().__init__(kind)
        self.kind, self.status = kind, status


async def call_once(client: UpstreamClient, path: str, body: dict, total_timeout: float) -> dict[str, Any]:
    """One plain (non-streamed) OpenAI-form call to one upstream, for calls made off the request
    path (judged shadow sampling): the same send as a request's (one of the upstream's concurrency
    slots, an Anthropic upstream gets Messages, the body checked against the OpenAI schema), but no
    retry, no fallback and no circuit-breaker bookkeeping. Raises ``CallFailed``."""
    try:
        async with deadline(total_timeout):
            opened = await _open_one(client, path, body, stream=False)
    except _Fail as f:
        raise CallFailed(f.kind, f.status) from None
    except asyncio.TimeoutError:
        raise CallFailed("timeout", None) from None
    return opened.payload or {}


def _client_error(f: _Fail) -> APIError:
    try:
        err = orjson.loads(f.body).get("error") or {}
        message = err.get("message") if isinstance(err, dict) else str(err)
    except Exception:
        message = None
    status = f.status or 400
    from gateway.secrets import redact

    detail = redact(message or f.body[:300].decode(errors="replace"))
    return APIError(status, f"Upstream rejected the request: {detail}", code="upstream_rejected")


def _exhausted(attempts: list[Attempt], last: _Fail | None) -> APIError:
    if not attempts:
        return APIError(503, "No upstream is available for this request.", code="no_upstream_available")
    tried = ", ".join(f"{a.upstream}: {a.error}" for a in attempts)
    kinds = {a.error for a in attempts}
    if kinds <= {"circuit_open"}:
        return APIError(503, f"Every candidate upstream is unavailable ({tried}).", code="upstreams_unavailable")
    if kinds <= {"status_429", "circuit_open"}:
        ra = last.retry_after if last and last.retry_after else 1.0
        return APIError(
            429,
            f"Every candidate upstream is rate limited ({tried}).",
            code="upstream_rate_limited",
            headers={"Retry-After": str(int(max(1, ra)))},
        )
    if last is not None and last.kind == "timeout":
        return APIError(504, f"Upstream timed out ({tried}).", code="upstream_timeout")
    if last is not None and last.kind == "idle_timeout":
        return APIError(
            504,
            f"Upstream stalled: no data for {last.idle:g}s (the idle timeout) while sending its response ({tried}).",
            code="upstream_idle_timeout",
        )
    if last is not None and last.kind == "bad_response":
        return APIError(
            502,
            f"Upstream returned a response that is not an OpenAI completion ({last.why}; {tried}).",
            code="upstream_bad_response",
        )
    return APIError(502, f"Upstream request failed after retries and fallbacks ({tried}).", code="upstream_failed")
