"""``RequestContext``: one request's state as it moves through the pipeline stages."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.outcomes.record import Outcome

if TYPE_CHECKING:
    from starlette.requests import Request

    from gateway.ingress.base import ChatRequest, Ingress
    from gateway.limits.keys import KeyRecord
    from gateway.policy.engine import Decision, Target
    from gateway.runtime import Runtime
    from gateway.services import Services


@dataclass
class RequestContext:
    """Built when the request arrives; each stage fills in its part, ``finish`` closes it once.

    - ``rt``: the runtime in force when the request arrived (a reload does not change it);
    - ``key``: the virtual key the auth middleware found (None with auth off);
    - ``outcome``: the record being built; every exit fills it and ``finish`` submits it.
    """

    services: Services
    rt: Runtime
    ingress: Ingress
    request: Request
    request_id: str
    started: float
    key: KeyRecord | None
    headers: dict[str, str]
    outcome: Outcome
    chat: ChatRequest | None = None
    target: Target | None = None
    text: str = ""
    prompt_tokens: int = 0
    decision: Decision | None = None
    usage: dict[str, Any] | None = None
    extra_usage: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answer: str | None = None  # the answer text sent to the client (post-answer hooks read it)
    finished: bool = False

    @classmethod
    def begin(cls, services: Services, ingress: Ingress, request: Request) -> RequestContext:
        started = time.perf_counter()
        request_id = "req_" + uuid.uuid4().hex
        state = request.scope.get("state") or {}
        key = state.get("key")
        headers = {k: v for k, v in request.headers.items() if k not in ("authorization", "cookie")}
        outcome = Outcome(request_id=request_id, ts=time.time(), endpoint=ingress.name, key_id=state.get("key_id"))
        return cls(services, services.runtime, ingress, request, request_id, started, key, headers, outcome)

    def record(self, **fields: Any) -> None:
        """Set several outcome fields at once (one copy instead of one validated assignment each)."""
        self.outcome = self.outcome.model_copy(update=fields)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started
