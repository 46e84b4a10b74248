"""`ml evaluate`: score a registered version on a folder of annotated WFDB records."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from cli.context import AppContext, handle_errors, json_option, pass_app
from cli.registry_view import mlflow_errors_to_click, pct


@click.command()
@click.argument("model")
@click.argument("version")
@click.option(
    "--records",
    "records_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of WFDB records (NAME.hea, NAME.dat) with beat annotations, any sampling rate.",
)
@click.option("--lead", default=None, help="Lead to classify (default: MLII, else the first).")
@click.option(
    "--annotator", default="atr", show_default=True, help="Annotation file suffix (NAME.atr)."
)
@click.option(
    "--tolerance-ms",
    default=150.0,
    show_default=True,
    type=click.FloatRange(1, 1000),
    help="A detected beat matches a reference beat within this distance (EC57: 150 ms).",
)
@click.option(
    "--reference-peaks",
    is_flag=True,
    help="Classify at the annotated R peaks instead of the model's own QRS detector.",
)
@click.option(
    "--log",
    "log_run",
    is_flag=True,
    help="Record the result on the version: an MLflow run linked to it, and a version tag.",
)
@click.option("--name", "dataset_name", default=None, help="Data set name (default: the folder's).")
@json_option
@pass_app
@handle_errors
@mlflow_errors_to_click
def evaluate(
    app: AppContext,
    model: str,
    version: str,
    records_dir: Path,
    lead: str | None,
    annotator: str,
    tolerance_ms: float,
    reference_peaks: bool,
    log_run: bool,
    dataset_name: str | None,
    as_json: bool,
) -> None:
    """Score VERSION of MODEL on annotated records: per-class Se/+P/F1, confusion, detector.

    Each record is classified whole through the model's own preprocessing (which resamples any
    sampling rate); detected beats are matched to the reference beats by position.
    """
    from hearteye.evaluation.annotated import evaluate_records, find_records
    from hearteye.registry import connect
    from hearteye.registry.evaluations import load_version_model, log_evaluation

    names = find_records(records_dir, annotator)
    registry = connect(app.settings)
    app.status(f"Loading {model} v{version}…")
    beat_model = load_version_model(registry, model, version)
    app.status(f"Scoring {len(names)} record(s) in {records_dir}…")

    def progress(score: object) -> None:
        from hearteye.evaluation.annotated import RecordScore

        assert isinstance(score, RecordScore)
        app.status(
            f"  {score.name}: {score.lead} at {score.fs:g} Hz, {score.n_reference} reference "
            f"beats, {score.n_detected} detected, {int(score.missed.sum())} missed, "
            f"{score.extra} extra"
        )

    evaluation = evaluate_records(
        beat_model,
        records_dir,
        lead=lead,
        annotator=annotator,
        tolerance_s=tolerance_ms / 1000.0,
        reference_peaks=reference_peaks,
        names=names,
        progress=progress,
    )
    payload = {"model": model, "version": str(version), **evaluation.to_dict()}
    if log_run:
        logged = log_evaluation(
            registry, model, version, evaluation, dataset_name or records_dir.resolve().name
        )
        payload["logged"] = {"run_id": logged.run_id, "tag": logged.tag}
        app.status(f"Logged as run {logged.run_id}; version tag {logged.tag}")
    if as_json:
        app.emit_json(payload)
        return
    _print_tables(app, model, version, payload)


def _print_tables(app: AppContext, model: str, version: str, payload: dict[str, object]) -> None:
    from hearteye.evaluation.metrics import REPORTED_CLASSES
    from hearteye.labels import AAMI_CLASSES

    metrics = payload["metrics"]
    assert isinstance(metrics, dict)
    title = f"{model} v{version} on {payload['directory']} (digest {str(payload['digest'])[:16]})"
    confusion, missed = payload["confusion"], payload["missed"]
    assert isinstance(confusion, list)
    assert isinstance(missed, dict)
    per_class = Table(title=title)
    for column in ("class", "reference beats", "Se", "+P", "F1"):
        per_class.add_column(column, justify="right")
    for label in REPORTED_CLASSES:
        i = AAMI_CLASSES.index(label)
        reference = sum(confusion[i]) + missed[label]
        predicted = sum(row[i] for row in confusion)
        per_class.add_row(
            label,
            f"{reference:,}",
            pct(metrics[f"{label}_sensitivity"] if reference else None),
            pct(metrics[f"{label}_ppv"] if predicted else None),
            f"{metrics[f'{label}_f1']:.3f}" if reference or predicted else "–",
        )
    per_class.add_row("macro", "", "", "", f"{metrics['macro_f1']:.3f}")
    app.out.print(per_class)

    matrix = Table(title="Matched beats: reference (rows) × predicted (columns)")
    matrix.add_column("ref")
    for label in AAMI_CLASSES:
        matrix.add_column(label, justify="right")
    matrix.add_column("missed", justify="right")
    for label, row in zip(AAMI_CLASSES, confusion, strict=True):
        matrix.add_row(label, *(f"{v:,}" for v in row), f"{missed[label]:,}")
    matrix.add_row("extra", "", "", "", "", "", f"{payload['extra']:,}")
    app.out.print(matrix)
    app.out.print(
        f"detector: Se {pct(metrics['detector_sensitivity'])}, "
        f"+P {pct(metrics['detector_ppv'])} "
        f"({sum(missed.values()):,} missed, {payload['extra']:,} extra beats; "
        f"accuracy of matched beats {pct(metrics['accuracy'])})"
    )
