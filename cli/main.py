"""The `ml` command line."""

from __future__ import annotations

import click


@click.group()
def cli() -> None:
    """HeartEye: train, register, promote and serve ECG arrhythmia models."""
