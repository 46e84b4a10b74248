"""`ml serve`: run the prediction API under Gunicorn (serving/gunicorn.conf.py).

The CLI never imports the serving tier: it replaces itself with the ``gunicorn`` process, which
imports ``serving.app`` in each worker. Everything else (models, alias, database, secret) comes
from the environment, as for any deployment (docs/serving.md).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from cli.context import AppContext, pass_app

APP = "serving.app:create_app()"
CONFIG = Path(__file__).resolve().parents[1] / "serving" / "gunicorn.conf.py"


def gunicorn_command(host: str, port: int, workers: int | None) -> list[str]:
    """The exact command ``ml serve`` runs."""
    local = Path(sys.executable).with_name("gunicorn")
    executable = str(local) if local.exists() else shutil.which("gunicorn") or "gunicorn"
    command = [executable, "-c", str(CONFIG), "--bind", f"{host}:{port}"]
    if workers is not None:
        command += ["--workers", str(workers)]
    return [*command, APP]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes (default: HEARTEYE_WORKERS, else 2). Each loads every model.",
)
@click.option("--print-command", is_flag=True, help="Print the Gunicorn command and exit.")
@pass_app
def serve(app: AppContext, host: str, port: int, workers: int | None, print_command: bool) -> None:
    """Serve the production version of each model over HTTP (Gunicorn + Uvicorn workers)."""
    command = gunicorn_command(host, port, workers)
    if print_command:
        click.echo(" ".join(command))
        return
    if not CONFIG.is_file():
        raise click.ClickException(f"serving configuration not found at {CONFIG}")
    app.status(f"Serving on http://{host}:{port} (docs: /api/docs) — Ctrl-C to stop")
    os.chdir(CONFIG.parents[1])  # gunicorn imports serving.app from here
    os.execv(command[0], command)  # noqa: S606 - our own fixed command, no shell
