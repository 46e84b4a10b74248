"""The `ml` command line: a root group that loads each command module only when it is invoked.

Heavy imports (mlflow, torch, xgboost) live inside command bodies, so `ml --help` stays instant.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from cli.context import AppContext

#: command name -> "module:attribute". One module per command group.
COMMANDS: dict[str, str] = {
    "data": "cli.data:data",
    "train": "cli.train:train",
    "models": "cli.models:models",
    "promote": "cli.lifecycle:promote",
    "rollback": "cli.lifecycle:rollback",
    "history": "cli.lifecycle:history",
    "status": "cli.status:status",
    "evaluate": "cli.evaluate:evaluate",
    "db": "cli.db:db",
    "users": "cli.users:users",
    "serve": "cli.serve:serve",
    "webhook": "cli.webhook:webhook",
    "backup": "cli.backup:backup",
    "restore": "cli.backup:restore",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hearteye", prog_name="ml")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """HeartEye: train, register, promote and serve ECG arrhythmia models."""
    # MLflow prints "View run at …" links on stdout, which belongs to our data (--json).
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # OpenMP threads (torch, XGBoost) that spin while they wait starve the thread they wait for
    # when other jobs share the cores: a quick BiLSTM fit took 93 s instead of ~10 s. Set before
    # any command imports them; an explicit OMP_WAIT_POLICY wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    ctx.obj = AppContext()


def main() -> None:  # pragma: no cover - console entry point wrapper
    sys.exit(cli.main(standalone_mode=True))
