"""`ml train`: learn a beat classifier on DS1, evaluate on DS2, log and register it in MLflow."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import click

from cli.context import AppContext, handle_errors, json_option, pass_app

KINDS = ("xgboost", "bilstm")


@click.command("train")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--quick", is_flag=True, help="A few records and minimal training (demo and tests).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where the BiLSTM trains (XGBoost always uses the CPU).",
)
@json_option
@pass_app
@handle_errors
def train(app: AppContext, kind: str, quick: bool, seed: int, device: str, as_json: bool) -> None:
    """Train KIND (xgboost or bilstm) and register it as a new model version."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from training.run import train as run_training

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=app.err,
        transient=False,
    )

    def track(
        iterable: Iterable[Any], description: str = "", total: int | None = None
    ) -> Iterator[Any]:
        yield from progress.track(iterable, description=description, total=total)

    app.status(f"Training {kind} ({'quick' if quick else 'full'}, seed {seed}) …")
    with progress:
        result = run_training(
            kind,
            app.settings,
            quick=quick,
            seed=seed,
            device=device,
            status=lambda message: progress.console.print(message, highlight=False),
            track=track,
        )
    if as_json:
        app.emit_json(result.to_json())
        return
    app.out.print(_summary(result.model, result.version, result.run_id, result.metrics))
    app.status(f"Tracking: {result.tracking_uri} · {result.duration_s:.0f} s")


def _summary(model: str, version: str, run_id: str, metrics: dict[str, float]) -> Any:
    from rich.table import Table

    from hearteye.anchors import ANCHORS

    table = Table(title=f"{model} version {version} · run {run_id} · DS2", title_justify="left")
    table.add_column("class")
    table.add_column("Se", justify="right")
    table.add_column("+P", justify="right")
    table.add_column("F1", justify="right")
    for anchor in ANCHORS:
        table.add_column(f"{anchor.name}\nSe / +P", justify="right")
    for c in ("N", "S", "V", "F"):
        cells = []
        for anchor in ANCHORS:
            if c in ("S", "V"):
                se = getattr(anchor, f"{c.lower()}_sensitivity")
                ppv = getattr(anchor, f"{c.lower()}_ppv")
                cells.append(f"{se:.1%} / {ppv:.1%}")
            else:
                cells.append("–")
        table.add_row(
            c,
            f"{metrics[f'ds2_{c}_sensitivity']:.1%}",
            f"{metrics[f'ds2_{c}_ppv']:.1%}",
            f"{metrics[f'ds2_{c}_f1']:.3f}",
            *cells,
        )
    table.caption = (
        f"macro-F1 {metrics['ds2_macro_f1']:.3f} · accuracy {metrics['ds2_accuracy']:.1%}"
    )
    return table
