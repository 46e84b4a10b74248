"""Evaluations of registered versions on annotated data sets (`ml evaluate --log`).

An evaluation is an MLflow run in the experiment ``hearteye-evaluations``: the data set is a run
input (name and digest), the metrics are linked to the version's logged model and to the data set,
and the full result is the run's ``evaluation.json``. The version gets a tag
``evaluation.<digest[:16]>`` that summarises the run, so the registry shows how each version does on
each data set the team has, and the promotion gate can require one
(``HEARTEYE_GATE_REQUIRED_EVALUATIONS``).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from hearteye.evaluation.annotated import Evaluation
from hearteye.registry.catalog import get_version
from hearteye.registry.connection import Registry, mlflow_errors
from hearteye.tracking import ensure_experiment

if TYPE_CHECKING:
    from hearteye.model.wrapper import ECGBeatModel

EVALUATION_EXPERIMENT: Final[str] = "hearteye-evaluations"
#: Version tag ``evaluation.<first 16 hex digits of the data set digest>``.
EVALUATION_TAG_PREFIX: Final[str] = "evaluation."
DIGEST_ID_CHARS: Final[int] = 16
#: The metrics a version tag summarises (the run holds them all).
SUMMARY_METRICS: Final[tuple[str, ...]] = (
    "macro_f1",
    "S_sensitivity",
    "S_ppv",
    "S_f1",
    "V_sensitivity",
    "V_ppv",
    "V_f1",
    "detector_sensitivity",
    "detector_ppv",
)


def evaluation_tag(digest: str) -> str:
    """The version tag key for an evaluation on the data set with ``digest``."""
    return f"{EVALUATION_TAG_PREFIX}{digest[:DIGEST_ID_CHARS]}"


@dataclass(frozen=True)
class LoggedEvaluation:
    """Where an evaluation was recorded."""

    run_id: str
    experiment_id: str
    tag: str
    summary: dict[str, Any]


def load_version_model(registry: Registry, name: str, version: str) -> ECGBeatModel:
    """Download ``name`` v``version``'s beat model and load it (with its own preprocessing)."""
    import mlflow.artifacts

    from hearteye.model.wrapper import ARTIFACT_KEY, ECGBeatModel

    get_version(registry, name, version)  # a clear error for an unknown model or version
    with (
        mlflow_errors(registry.target, f"download {name} v{version}"),
        tempfile.TemporaryDirectory(prefix="hearteye-eval-") as tmp,
    ):
        uri = registry.client.get_model_version_download_uri(name, version).rstrip("/")
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"{uri}/artifacts/{ARTIFACT_KEY}",
            dst_path=tmp,
            tracking_uri=registry.target.uri,
            registry_uri=registry.target.uri,
        )
        model = ECGBeatModel()
        model.load_dir(Path(tmp) / ARTIFACT_KEY)
    return model


def log_evaluation(
    registry: Registry, name: str, version: str, evaluation: Evaluation, dataset_name: str
) -> LoggedEvaluation:
    """Record ``evaluation`` as a run linked to the version, and tag the version with a summary."""
    from mlflow.entities import (
        Dataset,
        DatasetInput,
        InputTag,
        LoggedModelInput,
        Metric,
        Param,
    )

    client = registry.client
    digest_id = evaluation.digest[:DIGEST_ID_CHARS]
    metrics = evaluation.metrics()
    with mlflow_errors(registry.target, f"log an evaluation of {name} v{version}"):
        model_version = client.get_model_version(name, version)
        model_id = logged_model_id(model_version)
        experiment_id = ensure_experiment(client, registry.target, EVALUATION_EXPERIMENT)
        run = client.create_run(
            experiment_id,
            run_name=f"{name}-v{version}-{dataset_name}",
            tags={
                "hearteye.model": name,
                "hearteye.version": str(version),
                "hearteye.dataset": dataset_name,
                "hearteye.dataset_digest": evaluation.digest,
                "mlflow.user": registry.actor,
            },
        )
        run_id = run.info.run_id
        try:
            now = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[
                    Metric(
                        f"eval_{key}",
                        float(value),
                        now,
                        0,
                        model_id=model_id,
                        dataset_name=dataset_name,
                        dataset_digest=digest_id,
                    )
                    for key, value in metrics.items()
                ],
                params=[
                    Param("model", name),
                    Param("version", str(version)),
                    Param("annotator", evaluation.annotator),
                    Param("lead", evaluation.lead or "MLII, else the first lead"),
                    Param("tolerance_s", str(evaluation.tolerance_s)),
                    Param("reference_peaks", str(evaluation.reference_peaks)),
                    Param("records", str(len(evaluation.records))),
                ],
            )
            source = json.dumps({"uri": evaluation.directory, "digest": evaluation.digest})
            client.log_inputs(
                run_id,
                datasets=[
                    DatasetInput(
                        Dataset(
                            name=dataset_name,
                            digest=digest_id,
                            source_type="local",
                            source=source,
                        ),
                        tags=[InputTag("mlflow.data.context", "evaluation")],
                    )
                ],
                models=[LoggedModelInput(model_id)] if model_id else None,
            )
            client.log_dict(run_id, evaluation.to_dict(), "evaluation.json")
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id)
        summary = {
            "run_id": run_id,
            "dataset": dataset_name,
            "digest": evaluation.digest,
            "records": len(evaluation.records),
            **{key: round(metrics[key], 4) for key in SUMMARY_METRICS},
        }
        tag = evaluation_tag(evaluation.digest)
        client.set_model_version_tag(name, str(version), tag, json.dumps(summary))
    return LoggedEvaluation(run_id=run_id, experiment_id=experiment_id, tag=tag, summary=summary)


def logged_model_id(model_version: Any) -> str | None:
    """The id of the logged model behind a version (the registry keeps it as ``models:/<id>``)."""
    if getattr(model_version, "model_id", None):
        return str(model_version.model_id)
    source = str(model_version.source or "")
    if source.startswith("models:/m-"):
        return source.removeprefix("models:/").split("/")[0]
    return None


def version_evaluations(tags: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """A version's evaluation summaries by digest id (tags that do not parse are left out)."""
    out: dict[str, dict[str, Any]] = {}
    for key, raw in tags.items():
        if not key.startswith(EVALUATION_TAG_PREFIX):
            continue
        try:
            summary = json.loads(raw)
        except ValueError:
            continue
        if isinstance(summary, dict):
            out[key.removeprefix(EVALUATION_TAG_PREFIX)] = summary
    return out
