"""``GET /api/v1/models``: what this worker serves, from which registry, and the last failures."""

from __future__ import annotations

import os

from fastapi import APIRouter

from serving.deps import AUTH_ERRORS, Clinician, StoreDep
from serving.registry_source import redact_uri
from serving.schemas import (
    LoadedVersion,
    ModelsResponse,
    ModelStatus,
    RegistryStatus,
    SwapErrorOut,
)
from serving.store import ModelStore

router = APIRouter(prefix="/api/v1", tags=["models"], responses=AUTH_ERRORS)


@router.get("/models", response_model=ModelsResponse)
async def list_models(user: Clinician, store: StoreDep) -> ModelsResponse:
    """The served models: loaded version, run, when and how fast it loaded, last swap error."""
    return models_status(store)


def models_status(store: ModelStore) -> ModelsResponse:
    settings = store.settings
    models = []
    for slot in store.slots.values():
        current = slot.current
        error = slot.last_error
        models.append(
            ModelStatus(
                name=slot.name,
                default=slot.name == settings.default_model,
                alias=settings.model_alias,
                alias_version=slot.alias_version,
                loaded=None
                if current is None
                else LoadedVersion(
                    version=current.version,
                    run_id=current.run_id,
                    kind=current.kind,
                    source=current.source,
                    loaded_at=current.loaded_at,
                    load_s=round(current.load_s, 3),
                ),
                micro_batched=slot.name in settings.micro_batch_models,
                swaps=slot.swaps,
                last_swap_at=slot.last_swap_at,
                last_error=None
                if error is None
                else SwapErrorOut(
                    version=error.version, stage=error.stage, message=error.message, at=error.at
                ),
            )
        )
    return ModelsResponse(
        worker_pid=os.getpid(),
        registry=RegistryStatus(
            uri=redact_uri(store.source.uri),
            reachable=store.registry_reachable,
            error=store.registry_error,
            last_poll_at=store.last_poll_at,
        ),
        models=models,
    )
