"""Access control on the request path: virtual keys, rpm/tpm limits, budgets, prompt size.

- ``AuthMiddleware`` (pure ASGI, so streaming and disconnects pass through untouched): with
  ``server.auth`` on, every ``/v1`` request needs ``Authorization: Bearer <virtual key>``; the key's
  requests-per-minute limit is taken here. ``/metrics`` needs the admin key when
  ``server.metrics_auth`` is on. Sets ``request.state.key_id`` for the outcome record.
- ``admit`` (called by the pipeline's admit stage once the model is resolved): allowed policies/models, the
  policy's ``max_prompt_tokens``, tokens-per-minute and the USD budget.
- ``settle`` (called when the request is accounted): completion tokens and the actual cost are
  added to the key's counters, off the request path.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from gateway import metrics
from gateway.errors import APIError
from gateway.limits import budget, mirror, outage, ratelimit
from gateway.limits.keys import KeyRecord, KeyStore, hash_key, recorded_spend
from gateway.state import InProcessState, SharedState, StateUnavailable, strict

log = logging.getLogger("shunter.limits")


@dataclass
class Ticket:
    key: KeyRecord
    prompt_tokens: int


class Guard:
    """``Services.guard``: the key store, shared counters and tickets of requests in flight."""

    def __init__(self, keys: KeyStore, shared: SharedState) -> None:
        self.keys = keys
        self.shared = strict(shared)  # raises StateUnavailable: each limit applies its failure policy
        self.owed = outage.OwedCharges()
        self.tickets: dict[str, Ticket] = {}
        self._tasks: set[asyncio.Task] = set()
        self._seeded: set[str] = set()
        self.runtime_seen: Any = None

    @classmethod
    def open(cls, cfg: Any, shared: SharedState) -> Guard:
        """The guard for a configuration: its key store, with a warning when auth is off or keyless."""
        from gateway import secrets
        from gateway.limits import HOW_TO

        secrets.register(cfg)
        guard = cls(KeyStore(cfg.server.outcomes_path), shared)
        if not cfg.server.auth:
            log.warning(HOW_TO)
        elif not guard.keys.list():
            log.warning(
                "auth is on and no API key exists yet: create one with "
                "'shunter keys create --config <file> --rpm 60 --budget 20'"
            )
        return guard

    async def drain(self) -> None:
        """Let the charges still being written finish (shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def lookup(self, token: str) -> KeyRecord | None:
        if not token:
            return None
        hit, rec = self.keys.cached(token)
        if not hit:  # SQLite in a worker thread, not on the event loop
            rec = await asyncio.to_thread(self.keys.lookup, token)
        if rec is None and mirror.enabled(self.shared):  # created on another replica
            rec = await mirror.get(self.shared, hash_key(token))
        return rec

    async def create(self, spec: Any) -> tuple[KeyRecord, str]:
        rec, key = await asyncio.to_thread(self.keys.create, spec)
        if mirror.enabled(self.shared):
            try:
                await mirror.put(self.shared, hash_key(key), rec)
            except StateUnavailable:  # other replicas would refuse it: take it back
                await asyncio.to_thread(self.keys.revoke, rec.id)
                raise _redis_down("The key was not created") from None
        return rec, key

    async def revoke(self, key_id: str) -> bool:
        done = await asyncio.to_thread(self.keys.revoke, key_id)
        if mirror.enabled(self.shared):
            try:
                done = await mirror.revoke(self.shared, key_id) or done
            except StateUnavailable:  # other replicas would still accept it
                raise _redis_down("The key is revoked on this replica only; retry to revoke it everywhere") from None
        return done

    def forget(self, request_id: str | None) -> None:
        if request_id:
            self.tickets.pop(request_id, None)

    async def _seed_budget(self, rec: KeyRecord) -> None:
        """In-process counters start empty: resume this period's spend from the outcome table."""
        if rec.id in self._seeded or not isinstance(self.shared, InProcessState):
            return
        self._seeded.add(rec.id)
        since = budget.period_start(rec.spec).timestamp()
        usd = await asyncio.to_thread(recorded_spend, self.keys, rec.id, since)
        await budget.seed(self.shared, rec.id, rec.spec, usd)

    async def spent(self, rec: KeyRecord) -> float:
        """USD the key has spent in its current budget period (as ``admit`` sees it)."""
        await self._seed_budget(rec)
        return await budget.spent(self.shared, rec.id, rec.spec)

    def settle(self, outcome: Any) -> None:
        ticket = self.tickets.pop(outcome.request_id, None)
        if ticket is None:
            return
        task = asyncio.get_running_loop().create_task(self._settle(ticket, outcome))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, t: Ticket, outcome: Any) -> None:
        spec = t.key.spec
        try:
            if self.owed.owed:
                await self.owed.pay(self.shared)
        except StateUnavailable:
            pass
        try:
            if spec.tpm and outcome.completion_tokens:
                try:
                    await ratelimit.add(self.shared, t.key.id, "tpm", outcome.completion_tokens)
                except StateUnavailable:  # that minute is over by the time Redis returns
                    pass
            if spec.budget_usd is not None and outcome.cost_usd:
                counter, ttl = budget.counter(t.key.id, spec)
                try:
                    await self.shared.incr(counter, outcome.cost_usd, ttl)
                except StateUnavailable:  # charged once Redis answers again
                    self.owed.add(counter, outcome.cost_usd, ttl)
        except Exception:  # accounting must never fail a request; the outcome record still has the cost
            log.exception("could not charge key %s", t.key.id)


def _redis_down(what: str) -> APIError:
    return APIError(
        503,
        f"{what}: the shared state (Redis) is unreachable.",
        code="limits_unavailable",
        headers={"Retry-After": "2"},
    )


async def admit(
    guard: Guard, key: KeyRecord | None, rt: Any, target: Any, req: Any, tokens: int, request_id: str
) -> bool:
    """Check the resolved target against the key and the policy; raise ``APIError`` to refuse.

    Returns True when a ticket was taken (the request's usage is charged to the key at settle).
    """
    pol = rt.policies[target.policy].cfg if target.policy else None
    if pol is not None and pol.max_prompt_tokens and tokens > pol.max_prompt_tokens:
        raise APIError(
            400,
            f"The prompt is about {tokens} tokens; policy '{target.policy}' accepts at most {pol.max_prompt_tokens}.",
            code="prompt_too_long",
            param="messages" if hasattr(req, "messages") else "prompt",
        )
    if key is None:
        return False
    _check_access(key.spec, target)
    if key.spec.tpm:
        await _take_tokens(guard, key, rt, tokens, key.spec.tpm)
    if key.spec.budget_usd is not None:
        await _check_budget(guard, key, rt, key.spec.budget_usd)
    guard.tickets[request_id] = Ticket(key, tokens)
    return True


def _check_access(spec: Any, target: Any) -> None:
    """The key may use the policy, or call the model directly (403 otherwise)."""
    if target.policy and not spec.allows_policy(target.policy):
        raise APIError(
            403,
            f"This API key may not use policy '{target.policy}' (allowed: {', '.join(spec.policies or []) or 'none'}).",
            code="policy_not_allowed",
            param="model",
        )
    if target.passthrough and not spec.allows_model(target.passthrough):
        allowed = ", ".join(spec.models or []) or "none; use a policy"
        raise APIError(
            403,
            f"This API key may not call model '{target.passthrough}' directly (allowed: {allowed}).",
            code="model_not_allowed",
            param="model",
        )


async def _take_tokens(guard: Guard, key: KeyRecord, rt: Any, tokens: int, tpm: int) -> None:
    """Charge the prompt's tokens to the key's tokens-per-minute window (400 if one prompt alone is
    over the limit, 429 with ``Retry-After`` when the window is full; allowed while the shared
    state is down)."""
    if tokens > tpm:
        raise APIError(
            400,
            f"The prompt is about {tokens} tokens, more than this key's limit of {tpm} tokens per minute.",
            code="tokens_per_minute_exceeded",
        )
    await _take(rt, guard, key.id, "tpm", tokens, tpm, "{used} of {limit} tokens per minute used by this key")


async def _check_budget(guard: Guard, key: KeyRecord, rt: Any, limit: float) -> None:
    """402 once the key has spent its budget for the period (allowed while the shared state is down)."""
    spec = key.spec
    try:
        await guard._seed_budget(key)
        spent = await budget.spent(guard.shared, key.id, spec)
    except StateUnavailable:
        outage.unavailable(rt, "budget")
        return
    if spent >= limit:
        metrics.RATE_LIMITED.labels("budget").inc()
        _, left, per = budget.period(spec)
        headers = {"Retry-After": str(int(left))} if left else {}
        raise APIError(
            402,
            f"Budget exhausted: this key has spent {budget.usd(spent)} of its {budget.usd(limit)} budget {per}.",
            code="budget_exceeded",
            type="insufficient_quota",
            headers=headers,
        )


def _bearer(scope: dict) -> str:
    for k, v in scope.get("headers", ()):
        if k == b"authorization":
            s = v.decode("latin-1")
            return s[7:].strip() if s[:7].lower() == "bearer " else ""
    return ""


DOCS_PATHS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


def _header(scope: dict, name: bytes) -> str:
    for k, v in scope.get("headers", ()):
        if k == name:
            return v.decode("latin-1").strip()
    return ""


def _client_key(scope: dict) -> str:
    """A virtual key as OpenAI clients send it (``Authorization: Bearer``) or Anthropic ones (``x-api-key``)."""
    return _bearer(scope) or _header(scope, b"x-api-key")


def is_admin(scope: dict, rt: Any) -> bool:
    """The request carries the admin key, as ``Authorization: Bearer`` or ``x-admin-key``."""
    from gateway import secrets

    expected = secrets.admin_key(rt.cfg.server)
    if not expected:
        return False
    given = [g for g in (_bearer(scope), _header(scope, b"x-admin-key")) if g]
    return any(hmac.compare_digest(g.encode(), expected.encode()) for g in given)


def _refuse(status: int, msg: str, code: str) -> APIError:
    return APIError(status, msg, code=code, headers={"WWW-Authenticate": "Bearer"})


class AuthMiddleware:
    """Virtual keys and rpm on ``/v1``; the admin key on ``/metrics`` when asked; private API docs.

    ``/v1/feedback`` also takes the admin key (feedback on any request). ``/openapi.json`` and
    ``/docs`` need a virtual key or the admin key while auth is on, unless ``server.public_docs``.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        svc = scope["app"].state.services
        if svc is None:
            return await self.app(scope, receive, send)
        rt, guard = svc.runtime, svc.guard
        if guard.runtime_seen is not rt:  # a reload may name new secret variables
            from gateway import secrets

            secrets.register(rt.cfg)
            guard.runtime_seen = rt
        state = scope.setdefault("state", {})
        try:
            await self._check(scope, state, rt, guard)
        except APIError as err:  # in the client's format (Anthropic's under /v1/messages)
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
            return await err.response_for(scope["path"], headers)(scope, receive, send)
        try:
            await self.app(scope, receive, send)
        finally:
            guard.forget(state.get("ticket_id"))

    async def _check(self, scope: dict, state: dict, rt: Any, guard: Guard) -> None:
        """Raise the ``APIError`` that refuses the request, or fill ``state`` and return."""
        server = rt.cfg.server
        path: str = scope["path"]
        if path == "/metrics" and server.metrics_auth and not is_admin(scope, rt):
            raise _refuse(401, "/metrics needs the admin key (server.metrics_auth is on).", "invalid_admin_key")
        if not server.auth:
            return
        if path in DOCS_PATHS and not server.public_docs:
            if is_admin(scope, rt) or await self._key(scope, rt, guard) is not None:
                return
            raise _refuse(
                401,
                "The API description needs an API key while auth is on (or set server.public_docs: true).",
                "invalid_api_key",
            )
        if not (path == "/v1" or path.startswith("/v1/")):
            return
        if path == "/v1/feedback" and is_admin(scope, rt):
            state["admin"] = True
            return
        rec = await self._key(scope, rt, guard)
        if rec is None:
            token = _client_key(scope)
            msg = (
                "Invalid API key."
                if token
                else "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>' "
                "(create one with 'shunter keys create')."
            )
            raise _refuse(401, msg, "invalid_api_key")
        state["key"], state["key_id"] = rec, rec.id
        if rec.spec.rpm:
            await _take_rpm(rt, guard, rec)

    async def _key(self, scope: dict, rt: Any, guard: Guard) -> KeyRecord | None:
        try:
            return await guard.lookup(_client_key(scope))
        except StateUnavailable:
            raise outage.key_unavailable(rt) from None


async def _take_rpm(rt: Any, guard: Guard, rec: KeyRecord) -> None:
    await _take(rt, guard, rec.id, "rpm", 1, rec.spec.rpm or 0, "{limit} requests per minute for this key")


async def _take(rt: Any, guard: Guard, key_id: str, kind: str, amount: int, limit: int, what: str) -> None:
    """Take ``amount`` from the key's ``kind`` window (``tpm``, ``rpm``); 429 with ``Retry-After``
    when it is full (``what`` says which limit). While the shared state is down the outage
    policy decides (``outage.unavailable`` raises the 503 for a limit that fails closed)."""
    try:
        v = await ratelimit.take(guard.shared, key_id, kind, amount, limit)
    except StateUnavailable:
        outage.unavailable(rt, kind)
        return
    if not v.allowed:
        metrics.RATE_LIMITED.labels(kind).inc()
        raise APIError(
            429,
            f"Rate limit reached: {what.format(used=int(v.used), limit=limit)}; retry in {v.retry_after}s.",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(v.retry_after)},
        )
