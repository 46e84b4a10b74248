"""One training run: build DS1/DS2, fit on DS1, evaluate once on DS2, log everything, register.

The same function runs against the embedded store and a remote ``mlflow server``. A failure at
any step ends the MLflow run as FAILED and registers nothing; registration is the last step and
creates the version together with its tags in one call.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hearteye.dataset import BeatDataset, build_dataset
from hearteye.errors import ConfigurationError, HeartEyeError
from hearteye.evaluation.metrics import class_metrics, confusion
from hearteye.labels import DS1, DS2, SPLIT_PROTOCOL
from hearteye.model.base import MODEL_KINDS
from hearteye.model.mlflow_io import input_example, log_beat_model, register_version
from hearteye.preprocess.config import PreprocessConfig
from hearteye.records import load_record
from hearteye.settings import HearteyeSettings
from hearteye.tracking import (
    TrackingTarget,
    ensure_experiment,
    fluent_api_on,
    prepare_target,
    require_reachable,
    translate_mlflow_error,
)
from training import plots
from training.base import Trainer, TrainingContext
from training.lineage import code_version, library_versions
from training.profile import build_reference_profile

#: Experiment every training run is logged to.
EXPERIMENT = "hearteye-training"
#: Records used by ``--quick``: DS1 and DS2 subsets holding N, S, V and F beats.
QUICK_RECORDS = {
    "DS1": ("106", "118", "119", "201", "208", "209"),
    "DS2": ("100", "200", "213", "232"),
}
#: Length of the real strip logged as the model's input example (s).
EXAMPLE_SECONDS = 10.0


@dataclass
class TrainResult:
    """What a finished run produced."""

    model: str
    version: str
    run_id: str
    metrics: dict[str, float]
    tracking_uri: str
    duration_s: float
    params: dict[str, Any] = field(default_factory=dict)
    #: DS1-only figures the trainer selected by (e.g. grouped-CV ``cv_*``), as logged to the run.
    selection_metrics: dict[str, float] = field(default_factory=dict)
    #: The in-memory classifier (for parity checks against the registered copy); not serialised.
    classifier: Any = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "run_id": self.run_id,
            "metrics": self.metrics,
            "tracking_uri": self.tracking_uri,
            "duration_s": round(self.duration_s, 1),
        }


def make_trainer(kind: str) -> Trainer:
    """The trainer for ``kind`` (imports only that kind's framework)."""
    if kind == "xgboost":
        from training.xgboost_trainer import XGBoostTrainer

        return XGBoostTrainer()
    if kind == "bilstm":
        from training.bilstm_trainer import BiLSTMTrainer

        return BiLSTMTrainer()
    raise ConfigurationError(f"unknown model kind {kind!r}; expected one of {sorted(MODEL_KINDS)}")


def resolve_device(kind: str, device: str) -> str:
    """``auto`` -> ``cuda`` when the BiLSTM can use a GPU, else ``cpu``; refuse impossible asks."""
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigurationError(f"unknown device {device!r}; expected auto, cpu or cuda")
    if kind == "xgboost":
        if device == "cuda":
            raise ConfigurationError("the xgboost-cpu build has no CUDA support; use --device cpu")
        return "cpu"
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise ConfigurationError("--device cuda asked for, but torch sees no CUDA device")
    return "cpu"


def train(
    kind: str,
    settings: HearteyeSettings,
    *,
    quick: bool = False,
    seed: int = 0,
    device: str = "auto",
    status: Callable[[str], None] = lambda message: None,
    track: Callable[..., Any] | None = None,
    trainer: Trainer | None = None,
) -> TrainResult:
    """Train, evaluate, log and register one model of ``kind``; see the module docstring.

    ``trainer`` replaces the kind's default (:func:`make_trainer`), e.g. with other
    hyper-parameters for an experiment; it must train ``kind``.
    """
    from mlflow import MlflowClient

    started = time.perf_counter()
    if kind not in MODEL_KINDS:
        raise ConfigurationError(
            f"unknown model kind {kind!r}; expected one of {sorted(MODEL_KINDS)}"
        )
    if trainer is None:
        trainer = make_trainer(kind)
    elif trainer.kind != kind:
        raise ConfigurationError(f"a {trainer.kind} trainer cannot train {kind!r}")
    resolved_device = resolve_device(kind, device)
    config = PreprocessConfig()
    records = QUICK_RECORDS if quick else {"DS1": DS1, "DS2": DS2}

    # Fail fast, before any work: the tracking server must answer and accept our credentials.
    target = prepare_target(settings)
    require_reachable(target)
    client = MlflowClient(tracking_uri=target.uri, registry_uri=target.uri)

    def build(split: str) -> BeatDataset:
        names = records[split]
        progress = track or (lambda it, **_: it)
        iterator = iter(progress(names, description=f"Building {split}", total=len(names)))

        def step(_name: str) -> None:
            next(iterator, None)

        dataset = build_dataset(settings.mitdb_path, names, config, settings.cache_dir, step)
        for _ in iterator:  # finish the progress bar
            pass
        return dataset

    ds1, ds2 = build("DS1"), build("DS2")
    status(
        f"DS1: {len(ds1)} beats {ds1.class_counts()} · DS2: {len(ds2)} beats {ds2.class_counts()}"
    )

    try:
        experiment_id = ensure_experiment(client, target, EXPERIMENT)
        with fluent_api_on(target):
            return _run(
                kind=kind,
                trainer=trainer,
                client=client,
                target=target,
                experiment_id=experiment_id,
                ds1=ds1,
                ds2=ds2,
                config=config,
                settings=settings,
                quick=quick,
                seed=seed,
                device=resolved_device,
                status=status,
                track=track,
                started=started,
            )
    except HeartEyeError:
        raise
    except Exception as exc:
        translated = translate_mlflow_error(exc, target, f"log and register a {kind} model")
        if translated is not None:
            raise translated from exc
        raise


def _run(
    *,
    kind: str,
    trainer: Trainer,
    client: Any,
    target: TrackingTarget,
    experiment_id: str,
    ds1: BeatDataset,
    ds2: BeatDataset,
    config: PreprocessConfig,
    settings: HearteyeSettings,
    quick: bool,
    seed: int,
    device: str,
    status: Callable[[str], None],
    track: Callable[..., Any] | None,
    started: float,
) -> TrainResult:
    import mlflow

    name = MODEL_KINDS[kind]
    code = code_version()
    libs = library_versions()
    run_name = f"{kind}-{'quick' if quick else 'full'}-seed{seed}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        run_id = run.info.run_id
        mlflow.set_tags(
            {
                "model_kind": kind,
                "registered_model": name,
                "quick": str(quick).lower(),
                "seed": str(seed),
                "device": device,
                "split_protocol": SPLIT_PROTOCOL,
                "dataset_digest": ds1.digest,
                "eval_dataset_digest": ds2.digest,
                "code_version": code.label,
                "git_commit": code.git_commit or "unknown",
                "git_dirty": str(code.git_dirty).lower(),
                **{f"lib.{k}": v for k, v in libs.items()},
            }
        )
        mlflow.log_params(
            {
                **config.as_params(),
                "seed": seed,
                "quick": quick,
                "device": device,
                "train_records": ",".join(ds1.record_names),
                "eval_records": ",".join(ds2.record_names),
            }
        )
        _log_dataset(ds1, "DS1", "training")
        _log_dataset(ds2, "DS2", "evaluation")

        ctx = TrainingContext(
            seed=seed,
            quick=quick,
            device=device,
            log_metrics=lambda metrics, step: mlflow.log_metrics(metrics, step=step),
            status=status,
            track=track or (lambda iterable, **_: iterable),
        )
        fit_started = time.perf_counter()
        fit = trainer.fit(ds1, ctx)
        fit_seconds = time.perf_counter() - fit_started
        mlflow.log_params(fit.params)
        mlflow.log_metrics({**fit.selection_metrics, "fit_seconds": fit_seconds})

        # The one and only look at DS2.
        predicted = np.argmax(fit.classifier.predict_proba(ds2.beats()), axis=1)
        cm = confusion(ds2.labels, predicted)
        metrics = class_metrics(cm)
        mlflow.log_metrics(metrics)
        _log_evaluation_artifacts(cm, metrics, f"{name} on DS2 ({'quick' if quick else 'full'})")

        record = load_record(settings.mitdb_path, ds2.record_names[0])
        n = int(EXAMPLE_SECONDS * record.fs)
        example = input_example(record.signal[:n], record.fs)
        status("Profiling the model on its training records …")
        profile = build_reference_profile(
            fit.classifier, config, settings.mitdb_path, ds1.record_names
        )
        status("Logging the model …")
        model_info = log_beat_model(fit.classifier, config, example, profile)

        tags = {
            **{k: f"{v:.6f}" for k, v in metrics.items()},
            "split_protocol": SPLIT_PROTOCOL,
            "dataset_digest": ds1.digest,
            "eval_dataset_digest": ds2.digest,
            "code_version": code.label,
            "model_kind": kind,
            "quick": str(quick).lower(),
            "seed": str(seed),
        }
        description = (
            f"{kind} trained on {'a quick DS1 subset' if quick else 'DS1'}; "
            f"DS2 macro-F1 {metrics['ds2_macro_f1']:.3f}"
        )
        version = register_version(client, name, model_info, run_id, tags, description)
        mlflow.set_tag("registered_version", version.version)
    return TrainResult(
        model=name,
        version=str(version.version),
        run_id=run_id,
        metrics=metrics,
        tracking_uri=target.uri,
        duration_s=time.perf_counter() - started,
        params=fit.params,
        selection_metrics=dict(fit.selection_metrics),
        classifier=fit.classifier,
    )


def _log_dataset(dataset: BeatDataset, split: str, context: str) -> None:
    import mlflow
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    ds = mlflow.data.from_numpy(
        dataset.features,
        targets=dataset.labels.astype(np.int64),
        source=HTTPDatasetSource("https://physionet.org/content/mitdb/1.0.0/"),
        name=f"mitdb-{split}",
        digest=dataset.digest[:32],
    )
    mlflow.log_input(ds, context=context, tags={"records": ",".join(dataset.record_names)})


def _log_evaluation_artifacts(cm: np.ndarray, metrics: dict[str, float], title: str) -> None:
    import json

    import mlflow

    with tempfile.TemporaryDirectory(prefix="hearteye-eval-") as tmp:
        out = Path(tmp)
        plots.confusion_matrix_png(cm, out / "confusion_matrix.png", title)
        plots.class_metrics_png(metrics, out / "class_metrics.png", title)
        (out / "metrics_table.md").write_text(plots.metrics_table(metrics))
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        (out / "confusion_matrix.json").write_text(json.dumps(cm.tolist()))
        mlflow.log_artifacts(str(out), artifact_path="evaluation")
