"""``GET /v1/models``: routing policies as virtual models, then every upstream model."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway import services
from gateway.protocol import ModelCard, ModelList

router = APIRouter()


@router.get("/v1/models", response_model=ModelList)
async def list_models(request: Request) -> ModelList:
    rt = services.of(request.app).runtime
    cards = [
        ModelCard(
            id=f"router-{name}",
            kind="policy",
            description=p.cfg.description or f"routes among {', '.join(p.cfg.candidates)}",
        )
        for name, p in rt.policies.items()
    ]
    cards += [ModelCard(id=a, kind="policy", description=f"alias of router-{p}") for a, p in rt.aliases.items()]
    cards += [ModelCard(id=name, kind="model", owned_by="upstream") for name in rt.clients]
    return ModelList(data=cards)
