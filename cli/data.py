"""`ml data`: fetch, verify and summarise the MIT-BIH Arrhythmia Database."""

from __future__ import annotations

from pathlib import Path

import click

from cli.context import AppContext, handle_errors, json_option, pass_app


@click.group("data")
def data() -> None:
    """The MIT-BIH Arrhythmia Database (HEARTEYE_MITDB_DIR)."""


@data.command("fetch")
@pass_app
@handle_errors
def fetch(app: AppContext) -> None:
    """Download the database from PhysioNet into HEARTEYE_MITDB_DIR (needs internet)."""
    from hearteye.fetch import fetch_mitdb

    destination = app.settings.mitdb_path
    app.status(f"Downloading MIT-BIH from PhysioNet into {destination} …")
    fetch_mitdb(destination)
    app.status(f"Done: {destination}")


@data.command("verify")
@click.option(
    "--checksums",
    type=click.Path(dir_okay=False, path_type=Path),
    help="sha256sum-format list (default: SHA256SUMS in or beside the data directory).",
)
@json_option
@pass_app
@handle_errors
def verify(app: AppContext, checksums: Path | None, as_json: bool) -> None:
    """Check the records against a checksum list; report missing or altered files."""
    from hearteye.checksums import default_checksum_file, verify_directory
    from hearteye.errors import ChecksumError

    directory = app.settings.mitdb_path
    checksum_file = checksums or default_checksum_file(directory)
    if checksum_file is None:
        raise ChecksumError(
            f"no checksum list found in or beside {directory}; pass --checksums FILE"
        )
    report = verify_directory(directory, checksum_file)
    if as_json:
        app.emit_json(
            {
                "directory": str(directory),
                "checksums": str(checksum_file),
                "checked": report.checked,
                "missing": report.missing,
                "altered": report.altered,
                "ok": report.ok,
            }
        )
    else:
        for name in report.missing:
            click.echo(f"MISSING  {name}")
        for name in report.altered:
            click.echo(f"ALTERED  {name}")
        if report.ok:
            click.echo(f"OK  {report.checked} files match {checksum_file}")
    if not report.ok:
        raise ChecksumError(
            f"{len(report.missing)} missing and {len(report.altered)} altered of "
            f"{report.checked} files in {directory}"
        )


@data.command("info")
@json_option
@pass_app
@handle_errors
def info(app: AppContext, as_json: bool) -> None:
    """Beats per split (DS1, DS2) and AAMI class, and the dataset digest."""
    from rich.progress import Progress

    from hearteye.dataset import build_dataset
    from hearteye.labels import AAMI_CLASSES, SPLITS
    from hearteye.preprocess.config import PreprocessConfig

    settings = app.settings
    names = [name for split in SPLITS.values() for name in split]
    with Progress(console=app.err, transient=True) as progress:
        task = progress.add_task("Building DS1 + DS2", total=len(names))
        dataset = build_dataset(
            settings.mitdb_path,
            names,
            PreprocessConfig(),
            settings.cache_dir,
            lambda _name: progress.advance(task),
        )
    splits = {
        split: dataset.for_records(members).class_counts() for split, members in SPLITS.items()
    }
    digest = dataset.digest
    if as_json:
        app.emit_json({"splits": splits, "digest": digest})
        return
    from rich.table import Table

    table = Table(title=f"MIT-BIH beats per split ({settings.mitdb_path})", title_justify="left")
    table.add_column("split")
    for label in AAMI_CLASSES:
        table.add_column(label, justify="right")
    table.add_column("total", justify="right")
    for split, counts in splits.items():
        table.add_row(split, *(f"{counts[c]:,}" for c in AAMI_CLASSES), f"{sum(counts.values()):,}")
    table.caption = f"digest {digest}"
    app.out.print(table)
