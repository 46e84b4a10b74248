"""What a trainer for one model kind provides to the training run."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from hearteye.dataset import BeatDataset
from hearteye.model.base import BeatClassifier

T = TypeVar("T")


@dataclass
class TrainingContext:
    """Run-wide options and callbacks handed to a trainer."""

    seed: int
    quick: bool
    device: str  # "cpu" or "cuda" (already resolved from "auto")
    #: Log metrics to the MLflow run (per-epoch curves use ``step``).
    log_metrics: Callable[[dict[str, float], int | None], None] = lambda metrics, step: None
    #: A status line for people (stderr).
    status: Callable[[str], None] = lambda message: None
    #: Wrap an iterable in a progress bar (stderr): ``track(iterable, description, total)``.
    track: Callable[..., Iterable[Any]] = lambda iterable, description="", total=None: iterable

    def progress(
        self, iterable: Iterable[T], description: str, total: int | None = None
    ) -> Iterator[T]:
        yield from self.track(iterable, description=description, total=total)


@dataclass
class FitResult:
    """A trained classifier and what to log about how it was chosen."""

    classifier: BeatClassifier
    #: Chosen hyper-parameters and training settings (MLflow params).
    params: dict[str, Any] = field(default_factory=dict)
    #: Model-selection figures on DS1 only (MLflow metrics, e.g. ``cv_macro_f1``).
    selection_metrics: dict[str, float] = field(default_factory=dict)


class Trainer(Protocol):
    """Learns one kind of beat classifier from DS1 alone."""

    kind: str

    def fit(self, train: BeatDataset, ctx: TrainingContext) -> FitResult:
        """Choose hyper-parameters (and epochs) with patient-grouped validation on ``train``, fit."""
        ...
