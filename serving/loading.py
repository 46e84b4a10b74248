"""Loading one version completely: files -> ``ECGBeatModel`` -> smoke prediction.

A version is only ever handed to the store (and so swapped in) after all three steps succeeded.
Loading and the smoke prediction are :func:`hearteye.model.smoke.load_and_check`, the same check
the promotion gate runs, so a version that passed the gate is not refused here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from hearteye.errors import HeartEyeError
from hearteye.model.smoke import SmokeTestError, load_and_check
from hearteye.model.wrapper import ECGBeatModel, StripInput, StripPrediction
from hearteye.monitoring.profile import PROFILE_FILE, ReferenceProfile

logger = logging.getLogger("serving.loading")

Source = Literal["registry", "cache"]
Stage = Literal["resolve", "download", "load", "smoke"]


class VersionLoadError(HeartEyeError):
    """A version could not be loaded; ``stage`` says where it failed."""

    def __init__(self, name: str, version: str | None, stage: Stage, problem: str) -> None:
        self.name = name
        self.version = version
        self.stage = stage
        self.problem = problem
        where = f"{name} v{version}" if version else name
        super().__init__(f"{where}: {stage} failed: {problem}")


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A fully loaded, smoke-tested version. Immutable: a swap replaces the whole object."""

    name: str
    version: str
    run_id: str | None
    model: ECGBeatModel = field(repr=False)
    kind: str
    loaded_at: datetime
    load_s: float
    source: Source
    smoke_beats: int
    #: The version's reference profile (drift monitoring); None: none logged, or monitoring off.
    profile: ReferenceProfile | None = field(default=None, repr=False)

    def predict(self, strips: Sequence[StripInput]) -> list[StripPrediction]:
        """Classify ``strips``; with the quality measures when the version is drift-monitored."""
        return self.model.predict_strips(strips, quality=self.profile is not None)

    @property
    def version_number(self) -> float:
        """The version as a number for the version gauge (NaN when not numeric)."""
        return float(self.version) if self.version.isdigit() else float("nan")


def load_version(
    name: str,
    version: str,
    run_id: str | None,
    model_dir: Path,
    source: Source,
    *,
    monitored: bool = True,
) -> LoadedModel:
    """Load the model directory of ``name`` v``version`` and smoke-test it (the gate's check);
    ``monitored``: also read its reference profile, when it has one."""
    started = time.perf_counter()
    try:
        checked = load_and_check(model_dir)
    except SmokeTestError as exc:
        raise VersionLoadError(name, version, exc.stage, exc.problem) from exc
    model = checked.model
    kind = type(model.classifier).__name__ if model.classifier is not None else "unknown"
    return LoadedModel(
        name=name,
        version=version,
        run_id=run_id,
        model=model,
        kind=str(getattr(model.classifier, "kind", kind)),
        loaded_at=datetime.now(UTC),
        load_s=time.perf_counter() - started,
        source=source,
        smoke_beats=checked.beats,
        profile=read_profile(name, version, model_dir) if monitored else None,
    )


def read_profile(name: str, version: str, model_dir: Path) -> ReferenceProfile | None:
    """The version's reference profile; None (logged) when it has none or it is unreadable: a
    version without one is served, just not drift-monitored."""
    path = model_dir / "artifacts" / PROFILE_FILE
    if not path.is_file():
        logger.warning("%s v%s has no reference profile: drift not monitored", name, version)
        return None
    try:
        return ReferenceProfile.load(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.error(
            "%s v%s: unreadable reference profile (%s): drift not monitored", name, version, exc
        )
        return None
